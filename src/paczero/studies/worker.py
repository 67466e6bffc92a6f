"""One run of a sweep, done in this process: train, resume, restart or evaluate it as its
state says. ``python -m paczero.studies.worker SWEEP_DIR CELL SEED`` is the worker process
the scheduler starts for ``--jobs`` above 1."""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any

from paczero.errors import Interrupted, UserError
from paczero.runs import EVAL_FILE
from paczero.studies.folder import open_sweep, write_json
from paczero.studies.spec import Cell, Sweep, yaml_value
from paczero.studies.state import run_state


def execute(sweep: Sweep, cell: Cell, seed: int) -> str:
    """Do what the run needs (in this process); returns the state it was in."""
    state = run_state(sweep, cell, seed)
    run = sweep.run_path(cell, seed)
    if state == "finished":
        return state
    if state == "blocked":
        raise UserError(f"{run} holds files but no config.yaml; move it away and rerun")
    if state == "eval":
        _evaluate(sweep, cell, seed)
        return state
    from paczero.durable import resume
    from paczero.trainer import train

    if state == "resume":
        resume(run, progress=False)
        return state
    if state == "restart":
        shutil.rmtree(run)
    run.parent.mkdir(parents=True, exist_ok=True)
    train(cell.resolved(seed), out=run, progress=False)
    return state


def _evaluate(sweep: Sweep, cell: Cell, seed: int) -> None:
    from paczero.evaluation import evaluate

    cfg = cell.resolved(seed)
    public = cfg.public_dict()
    flat = [f"{k}={yaml_value(v)}" for k, v in _flatten(public) if k != "description"]
    started = time.perf_counter()
    out: dict[str, Any] = {"cell": cell.name, "seed": seed, "model": cfg.model.name}
    for split in cell.splits:
        metrics = evaluate(cfg.model.name, split=split, overrides=flat)
        out[split] = metrics
        out["metric"] = "f1" if "f1" in metrics else "accuracy"
    out["seconds"] = round(time.perf_counter() - started, 3)
    out["config"] = public
    write_json(sweep.run_path(cell, seed) / EVAL_FILE, out)


def _flatten(data: dict[str, Any], prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def main(argv: list[str]) -> int:
    """`python -m paczero.studies.worker SWEEP_DIR CELL SEED`: one run, errors as one line."""
    import warnings

    warnings.filterwarnings("ignore", module="transformers|peft|torch")
    from paczero.quiet import quiet_libraries

    quiet_libraries()
    try:
        sweep = open_sweep(argv[0])
        execute(sweep, sweep.cell(argv[1]), int(argv[2]))
    except UserError as err:
        print(f"paczero: error: {err}", file=sys.stderr)
        return err.exit_code
    except Interrupted as err:
        print(f"paczero: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
