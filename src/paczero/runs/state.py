"""A run folder seen from outside (a sweep, a table, a plot): its state, its progress and
its results, read without locking or verifying it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paczero.runs.lock import killed_in_create

RESULT_FILE = "result.json"
EVAL_FILE = "eval.json"  # a sweep's zero-shot evaluation, in a run folder of its own


def run_state(path: Path) -> str:
    """finished (result.json), resume, restart (killed before it logged anything or kept
    its secret, or while it made its folder: nothing was released, so it starts again),
    blocked (files that are not a run), or new (nothing there)."""
    path = Path(path)
    if (path / RESULT_FILE).exists():
        return "finished"
    if (path / "config.yaml").exists():
        releases = path / "releases.jsonl"
        logged = releases.exists() and releases.stat().st_size > 0
        if not logged and not (path / "private" / "secret.json").exists():
            return "restart"
        return "resume"
    if path.exists():
        empty = not any(p.is_file() for p in path.rglob("*"))
        return "restart" if empty or killed_in_create(path) else "blocked"
    return "new"


def logged_steps(path: Path) -> int:
    """The complete records of releases.jsonl (a torn last line does not count)."""
    releases = Path(path) / "releases.jsonl"
    if not releases.exists():
        return 0
    return sum(1 for line in releases.read_bytes().splitlines() if line.endswith(b"}"))


def finished_result(path: Path) -> dict[str, Any] | None:
    """result.json of a finished run, None while there is none."""
    file = Path(path) / RESULT_FILE
    return json.loads(file.read_text()) if file.exists() else None


def evaluation_exists(path: Path) -> bool:
    return (Path(path) / EVAL_FILE).is_file()


def evaluation(path: Path) -> dict[str, Any] | None:
    """eval.json of a zero-shot evaluation, None while there is none."""
    file = Path(path) / EVAL_FILE
    return json.loads(file.read_text()) if file.exists() else None


def dev_history(path: Path) -> list[dict[str, Any]]:
    """Dev evaluations of a run: result.json's history, else metrics.jsonl (in flight)."""
    result = finished_result(path)
    if result is not None:
        return result["metrics"]["dev_history"]
    metrics = Path(path) / "metrics.jsonl"
    by_step: dict[int, dict[str, Any]] = {}
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            if record.get("split") == "dev":
                by_step[record["step"]] = record  # a resumed run may repeat a step: last wins
    return [by_step[s] for s in sorted(by_step)]


def is_training_run(path: Path) -> bool:
    """Whether ``path`` holds a training run's config and release log."""
    path = Path(path)
    return (path / "releases.jsonl").is_file() and (path / "config.yaml").is_file()
