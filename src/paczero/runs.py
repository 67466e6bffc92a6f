"""The run directory: resolved config, logs, tensors, private state, result.json."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from paczero.config import RunConfig
from paczero.errors import UserError
from paczero.privacy.ledger import JsonlLog, read_jsonl, repair_jsonl

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def default_run_dir(cfg: RunConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{cfg.task.name}-{cfg.mechanism.name}"


def check_new_run_dir(path: Path) -> None:
    """Refuse before any work starts if the directory already holds something."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        what = "a run" if (path / "config.yaml").exists() else "files"
        raise UserError(
            f"output directory {path} already holds {what}; choose another --out "
            "(or `paczero resume` an unfinished run)"
        )


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any, mode: int | None = None) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode(), mode)


class RunDir:
    """Paths and writers of one run; everything secret-dependent goes through ``private``."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path, cfg: RunConfig) -> RunDir:
        check_new_run_dir(path)
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        (run.path / "checkpoints").mkdir(exist_ok=True)
        run.private_dir.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        os.chmod(run.private_dir, PRIVATE_DIR_MODE)
        atomic_write_bytes(run.path / "config.yaml", cfg.to_yaml().encode())
        return run

    @property
    def private_dir(self) -> Path:
        return self.path / "private"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    def open_releases(self) -> JsonlLog:
        return JsonlLog(self.path / "releases.jsonl", durable=True)

    def open_private_releases(self) -> JsonlLog:
        return JsonlLog(self.private_releases_path, durable=True, mode=PRIVATE_FILE_MODE)

    def open_metrics(self) -> JsonlLog:
        return JsonlLog(self.path / "metrics.jsonl")

    def write_private(self, name: str, obj: Any) -> None:
        write_json(self.private_dir / name, obj, mode=PRIVATE_FILE_MODE)

    def run_id(self) -> str:
        """Identifies the run's config; private/ records it so a mismatch is caught."""
        return hashlib.sha256(self.config_path.read_bytes()).hexdigest()[:16]

    def save_tensors(
        self, name: str, named: list[tuple[str, torch.Tensor]], step: int | None = None
    ) -> Path:
        path = self.path / "checkpoints" / f"{name}.safetensors"
        _save_safetensors(path, named, step)
        return path

    def load_tensors(self, name: str) -> dict[str, torch.Tensor]:
        path = self.path / "checkpoints" / f"{name}.safetensors"
        if not path.exists():
            raise UserError(f"{self.path} has no checkpoints/{name}.safetensors")
        return load_file(path)

    def tensors_step(self, name: str) -> int | None:
        """The step a tensors file holds (from its metadata), None if absent."""
        path = self.path / "checkpoints" / f"{name}.safetensors"
        if not path.exists():
            return None
        with safe_open(path, framework="pt") as handle:
            step = (handle.metadata() or {}).get("step")
        return None if step is None else int(step)

    def save_checkpoint(
        self,
        step: int,
        named: list[tuple[str, torch.Tensor]],
        keep: int,
        state: dict[str, Any] | None = None,
    ) -> None:
        """checkpoints/step-NNNNNNN/ written whole or not at all; step 0 and the last few kept.

        ``state`` is public state only (mechanism posterior, schedule); secret state lives in
        private/ and does not change after setup.
        """
        final = self.path / "checkpoints" / f"step-{step:07d}"
        if final.exists():
            return
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".step-"))
        _save_safetensors(tmp / "trainable.safetensors", named, step)
        write_json(tmp / "state.json", {"step": step, **(state or {})})
        os.replace(tmp, final)
        old = self.checkpoint_steps()[:-keep]
        for stale in old:
            if stale != 0:
                shutil.rmtree(self.path / "checkpoints" / f"step-{stale:07d}")

    def checkpoint_steps(self) -> list[int]:
        folder = self.path / "checkpoints"
        steps = []
        for entry in folder.glob("step-*"):
            if entry.is_dir() and (entry / "state.json").exists():
                steps.append(int(entry.name.removeprefix("step-")))
        return sorted(steps)

    def load_checkpoint(self, at_most: int) -> tuple[int, dict[str, torch.Tensor] | None]:
        """The newest complete checkpoint with step <= at_most (step 0 and None if none)."""
        usable = [s for s in self.checkpoint_steps() if s <= at_most]
        if not usable:
            return 0, None
        step = usable[-1]
        return step, load_file(
            self.path / "checkpoints" / f"step-{step:07d}" / "trainable.safetensors"
        )

    def write_result(self, result: dict[str, Any]) -> None:
        write_json(self.path / "result.json", result)

    def releases(self, repair: bool = False) -> list[dict[str, Any]]:
        """The public release log. ``repair`` (before writing to the run again) cuts torn
        last lines off both logs and makes the private log match the public one."""
        public_path = self.path / "releases.jsonl"
        if repair:
            repair_jsonl(public_path)
            repair_jsonl(self.private_releases_path)
            self._reconcile_release_logs(read_jsonl(public_path))
        return read_jsonl(public_path)

    @property
    def private_releases_path(self) -> Path:
        return self.private_dir / "releases.jsonl"

    def _reconcile_release_logs(self, public: list[dict[str, Any]]) -> None:
        """The private record of a step is written before the public one, so after a crash
        the private log may hold one record more: a release that was never published nor
        applied, dropped here (the step is redone with the same keyed draws). Anything
        else means the pair was damaged or mixed up: refuse."""
        path = self.private_releases_path
        private = read_jsonl(path)
        n = len(public)
        if len(private) == n + 1 and private[-1].get("step") == n:
            _truncate_lines(path, n)
            private = private[:n]
        steps = [r.get("step") for r in public]
        if [r.get("step") for r in private] != steps:
            raise UserError(
                f"{path} holds {len(private)} records for the {n} steps of "
                f"{self.path / 'releases.jsonl'}: the public and private release logs "
                "disagree; this run cannot be resumed"
            )

    def metrics(self, repair: bool = False) -> list[dict[str, Any]]:
        if repair:
            repair_jsonl(self.path / "metrics.jsonl")
        return read_jsonl(self.path / "metrics.jsonl")

    def result(self) -> dict[str, Any]:
        path = self.path / "result.json"
        if not path.exists():
            raise UserError(f"{self.path} has no result.json (is it a finished paczero run?)")
        return json.loads(path.read_text())


def _save_safetensors(path: Path, named: list[tuple[str, torch.Tensor]], step: int | None) -> None:
    tensors = {n: t.detach().to("cpu").contiguous().clone() for n, t in named}
    metadata = None if step is None else {"step": str(step)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _truncate_lines(path: Path, lines: int) -> None:
    """Keep the first ``lines`` lines of a file, durably."""
    data = path.read_bytes()
    cut = 0
    for _ in range(lines):
        cut = data.index(b"\n", cut) + 1
    with open(path, "r+b") as handle:
        handle.truncate(cut)
        handle.flush()
        os.fsync(handle.fileno())


def open_run(path: str | Path) -> RunDir:
    run = RunDir(Path(path))
    if not run.config_path.exists():
        raise UserError(f"{path} is not a paczero run directory (no config.yaml)")
    return run
