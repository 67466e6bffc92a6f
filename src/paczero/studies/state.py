"""A run of a sweep as the sweep sees it: its state, its progress line and its outcome,
all read from the run folder through ``paczero.runs``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from paczero.runs import evaluation, finished_result, logged_steps
from paczero.runs import run_state as folder_state
from paczero.studies.spec import Cell, Sweep


def run_state(sweep: Sweep, cell: Cell, seed: int) -> str:
    """finished, train, resume, restart (a run killed before it logged anything or kept
    its secret, or while it made its folder: nothing was released, so it starts again),
    eval, or blocked (files that are not a run where the run should be)."""
    run = sweep.run_path(cell, seed)
    if cell.kind == "eval":
        return "finished" if evaluation(run) is not None else "eval"
    state = folder_state(run)
    return "train" if state == "new" else state


def done_text(sweep: Sweep, cell: Cell, seed: int, name: str, watched: Watched) -> str:
    """'zpl/seed-0: test accuracy 0.8125 (12.3 s)'. A run on secret rows shows no time: its
    wall time grows with the secret sample's size, which its result withholds too."""
    text = f"{name}: {outcome_text(sweep, cell, seed)}"
    if cell.kind == "train" and watched.secret_rows:
        return f"{text} (time withheld: DP rows are secret)"
    return f"{text} ({time.perf_counter() - watched.started:.1f} s)"


def outcome_text(sweep: Sweep, cell: Cell, seed: int) -> str:
    """'test accuracy 0.8125' from the run's result (or eval) file."""
    run = sweep.run_path(cell, seed)
    try:
        if cell.kind == "eval":
            data = evaluation(run)
            if data is None:
                return "no result file"
            metric = data["metric"]
            shown = [f"{s} {metric} {data[s][metric]:.4f}" for s in cell.splits]
            return ", ".join(shown)
        data = finished_result(run)
        if data is None:
            return "no result file"
        metric = data["metrics"]["metric"]
        return f"test {metric} {data['metrics']['test'][metric]:.4f}"
    except (OSError, KeyError, ValueError):
        return "no result file"


@dataclass
class Watched:
    """A run in flight, as its progress line shows it: the steps in its public release log
    out of the planned ones. A run whose mechanism draws secret rows shows no count: its
    step rate follows the secret sample's size (docs/algorithms.md, timing)."""

    label: str
    run: Path
    steps: int
    secret_rows: bool
    started: float = field(default_factory=time.perf_counter)
    said: bool = False  # a secret-rows run's one line was printed

    def line(self) -> str | None:
        """The progress line; a run on secret rows says it runs once (a line every
        interval would count its duration, which grows with the secret sample)."""
        seconds = time.perf_counter() - self.started
        if self.secret_rows:
            if self.said:
                return None
            self.said = True
            return f"{self.label} running (its steps and time are not shown: DP rows are secret)"
        return f"{self.label} running: step {logged_steps(self.run)}/{self.steps} ({seconds:.0f} s)"


def watch_run(sweep: Sweep, cell: Cell, seed: int, label: str) -> Watched:
    cfg = cell.resolved(seed)
    secret_rows = cfg.mechanism_type.chooses_rows
    return Watched(label, sweep.run_path(cell, seed), cfg.train.steps, secret_rows)


def start_text(i: int, n: int, cell: Cell, seed: int, state: str, sweep: Sweep) -> str:
    what = state
    if state == "resume":
        done = logged_steps(sweep.run_path(cell, seed))
        what = f"resume after step {done}"
    elif state == "restart":
        what = "train again: the killed start had released nothing"
    return f"[{i}/{n}] start  {cell.name}/seed-{seed} ({what})"
