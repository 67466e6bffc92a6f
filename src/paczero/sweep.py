"""`paczero sweep SPEC.yaml`: many ordinary runs from one spec, resumable, J at a time.

A spec names a base config (a recipe or a YAML file), common overrides, a grid and/or a
list of cells, and seeds. Every (cell, seed) is an ordinary run directory
``<sweep>/<cell>/seed-<s>/``; ``<sweep>/sweep.json`` holds the resolved cells, so that
``paczero table`` and ``paczero plot`` need no spec, and a rerun can check that the spec
changed no cell (it may add cells: the sweep grows). A rerun skips finished runs and
resumes killed ones through their write-ahead log, so a sweep can span sessions and
machines (copy the folder along).

    base: smoke                       # a recipe name, or a YAML path relative to the spec
    set: [data.num_train=64]          # common overrides (a list of key=value, or a mapping)
    grid: {train.lr: [1e-3, 1e-2]}    # cartesian product, crossed with the training cells
    cells:                            # explicit cells (several keys each), a cell base too
      - {name: zpl, set: [mechanism.name=paczero-zpl, mechanism.subsets=8]}
      - {name: zero-shot, kind: eval, set: [task.template=review], splits: [test, dev]}
    seeds: [0, 1, 2]                  # seed s sets seed.public=s and data.seed=s
    out: runs/my-sweep                # relative to the current directory; --out overrides it

``seed.secret`` is left unset (OS entropy) unless a cell sets it. Eval cells evaluate the
base model zero-shot (no training) and store ``<cell>/seed-<s>/eval.json``.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from paczero.errors import Interrupted, UserError
from paczero.signals import handled
from paczero.textfiles import load_yaml, read_text

SPEC_KEYS = ("description", "base", "set", "grid", "cells", "seeds", "out")
CELL_KEYS = ("name", "kind", "base", "set", "seeds", "splits")
KINDS = ("train", "eval")
SPLITS = ("test", "dev")
SWEEP_FILE = "sweep.json"
LOCK_FILE = ".lock"
FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]*$")


class SweepInterrupted(Interrupted):
    """SIGINT/SIGTERM stopped the sweep; runs in flight wrote a checkpoint."""

    def __init__(self, message: str, signum: int):
        Exception.__init__(self, message)
        self.exit_code = 128 + signum


# ---------------------------------------------------------------- the spec


@dataclass
class Cell:
    """One row of the table: a base config plus overrides, run once per seed."""

    name: str
    kind: str
    base: str  # as written in the spec (a recipe name or a path)
    config: dict[str, Any]  # the base's mapping, read once when the sweep was made
    set: list[str]
    seeds: list[int]
    splits: list[str] = field(default_factory=list)  # eval cells

    def overrides(self, seed: int) -> list[str]:
        """Seed first, so that a cell's own ``set`` (say a fixed data.seed) wins."""
        return [f"seed.public={seed}", f"data.seed={seed}", *self.set]

    def resolved(self, seed: int):
        """The run's validated config (``RunConfig``)."""
        from paczero.config import apply_overrides, validate_config

        return validate_config(apply_overrides(self.config, self.overrides(seed)))

    def to_json(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "kind": self.kind,
            "base": self.base,
            "config": self.config,
            "set": self.set,
            "seeds": self.seeds,
        }
        if self.kind == "eval":
            out["splits"] = self.splits
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cell:
        return cls(
            name=data["name"],
            kind=data["kind"],
            base=data["base"],
            config=data["config"],
            set=list(data["set"]),
            seeds=list(data["seeds"]),
            splits=list(data.get("splits", [])),
        )


@dataclass
class Sweep:
    path: Path
    cells: list[Cell]
    description: str = ""
    spec: str | None = None

    def cell(self, name: str) -> Cell:
        for cell in self.cells:
            if cell.name == name:
                return cell
        raise UserError(f"{self.path} has no cell '{name}'{_suggest(name, self.names())}")

    def names(self) -> list[str]:
        return [c.name for c in self.cells]

    def runs(self) -> list[tuple[Cell, int]]:
        return [(cell, seed) for cell in self.cells for seed in cell.seeds]

    def run_path(self, cell: Cell, seed: int) -> Path:
        return self.path / cell.name / f"seed-{seed}"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "description": self.description,
            "spec": self.spec,
            "cells": [c.to_json() for c in self.cells],
        }


def load_spec(path: str | Path, out: str | Path | None = None) -> Sweep:
    """Read and check a spec: every (cell, seed) config is validated here, so a typo fails
    before the first run starts."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep spec not found: {path}")
    spec = load_yaml(read_text(path, "sweep spec"), path)
    if not isinstance(spec, dict):
        raise UserError(f"{path}: a sweep spec must be a YAML mapping (base, set, grid, ...)")
    _check_keys(spec, SPEC_KEYS, f"{path}: unknown key")
    where = path.parent
    seeds = _seeds(spec.get("seeds", [0]), f"{path}: seeds")
    common = _assignments(spec.get("set"), f"{path}: set")
    base = spec.get("base")
    grid = _grid(spec.get("grid"), path)
    entries = spec.get("cells") or []
    if not isinstance(entries, list):
        raise UserError(f"{path}: cells must be a list of mappings with a name")

    cells: list[Cell] = []
    trains: list[tuple[str | None, Any, list[str], list[int]]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry:
            raise UserError(f"{path}: cells[{i}] must be a mapping with a name")
        name = str(entry["name"])
        _check_keys(entry, CELL_KEYS, f"{path}: cell '{name}' has an unknown key")
        kind = entry.get("kind", "train")
        if kind not in KINDS:
            raise UserError(f"{path}: cell '{name}': kind must be train or eval, got '{kind}'")
        cell_set = common + _assignments(entry.get("set"), f"{path}: cell '{name}': set")
        cell_seeds = (
            _seeds(entry["seeds"], f"{path}: cell '{name}': seeds") if "seeds" in entry else seeds
        )
        cell_base = entry.get("base", base)
        if kind == "eval":
            splits = entry.get("splits", ["test"])
            if not isinstance(splits, list) or not splits or set(splits) - set(SPLITS):
                raise UserError(
                    f"{path}: cell '{name}': splits must be a list of test and/or dev, "
                    f"got {splits!r}"
                )
            cells.append(_cell(name, "eval", cell_base, where, cell_set, cell_seeds, splits))
        else:
            if "splits" in entry:
                raise UserError(f"{path}: cell '{name}': splits is for eval cells only")
            trains.append((name, cell_base, cell_set, cell_seeds))
    if not trains and (grid or not entries):
        if base is None:
            raise UserError(f"{path}: no base config (set `base:` to a recipe or a YAML file)")
        trains.append((None, base, common, seeds))

    labels = _labels(list(grid))
    points = list(itertools.product(*grid.values())) if grid else [()]
    made = []
    for name, cell_base, cell_set, cell_seeds in trains:
        for point in points:
            parts = [name] if name is not None else []
            parts += [f"{label}-{_slug(v)}" for label, v in zip(labels, point, strict=True)]
            full = "_".join(parts) if parts else _slug(Path(str(cell_base)).stem)
            extra = [f"{key}={_yaml_value(v)}" for key, v in zip(grid, point, strict=True)]
            made.append(_cell(full, "train", cell_base, where, [*cell_set, *extra], cell_seeds, []))
    cells = made + cells  # training cells first, then the reference (eval) rows

    seen: set[str] = set()
    for cell in cells:
        if not _NAME.match(cell.name) or cell.name == SWEEP_FILE:
            raise UserError(
                f"{path}: cell name '{cell.name}' must start with a letter or digit and hold "
                "only letters, digits and . _ + = -"
            )
        if cell.name in seen:
            raise UserError(f"{path}: two cells are named '{cell.name}'; names must be unique")
        seen.add(cell.name)
        for seed in cell.seeds:
            try:
                cell.resolved(seed)
            except UserError as err:
                raise UserError(f"{path}: cell '{cell.name}' (seed {seed}): {err}") from None
    target = Path(out) if out is not None else Path(spec.get("out") or f"runs/sweep-{path.stem}")
    return Sweep(target, cells, description=str(spec.get("description", "")), spec=str(path))


def _cell(name, kind, base, where: Path, sets, seeds, splits) -> Cell:
    from paczero.config import read_source

    if base is None:
        raise UserError(f"cell '{name}' has no base config (set `base:` at the top or in the cell)")
    base = str(base)
    local = where / base
    source = str(local) if base.endswith((".yaml", ".yml")) or local.exists() else base
    try:
        config = read_source(source)
    except UserError as err:
        raise UserError(f"cell '{name}': {err}") from None
    return Cell(name, kind, base, config, list(sets), list(seeds), list(splits))


def _check_keys(mapping: dict, allowed: tuple[str, ...], what: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise UserError(f"{what} '{key}'{_suggest(str(key), list(allowed))}")


def _seeds(value: Any, what: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
    ):
        raise UserError(f"{what} must be a non-empty list of non-negative integers, got {value!r}")
    if len(set(value)) != len(value):
        raise UserError(f"{what} lists a seed twice: {value!r}")
    return list(value)


def _assignments(value: Any, what: str) -> list[str]:
    """`set` as a list of key=value strings, or a mapping of dotted keys to values."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [f"{k}={_yaml_value(v)}" for k, v in value.items()]
    if isinstance(value, list) and all(isinstance(a, str) and "=" in a for a in value):
        return list(value)
    raise UserError(f"{what} must be a list of key=value strings or a mapping, got {value!r}")


def _grid(value: Any, path: Path) -> dict[str, list[Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        raise UserError(f"{path}: grid must be a mapping of config keys to lists of values")
    for key, values in value.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{path}: grid '{key}' must be a non-empty list, got {values!r}")
    return {str(k): list(v) for k, v in value.items()}


def _labels(keys: list[str]) -> list[str]:
    """The last part of each grid key, or the whole key where two last parts collide."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return [leaf if last.count(leaf) == 1 else key for key, leaf in zip(keys, last, strict=True)]


def _slug(value: Any) -> str:
    text = "+".join(map(str, value)) if isinstance(value, list) else str(value)
    return re.sub(r"[^A-Za-z0-9._+-]", "-", text)


def _yaml_value(value: Any) -> str:
    """A value as an override's right-hand side (parsed back as YAML by apply_override)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ---------------------------------------------------------------- the sweep folder


def open_sweep(path: str | Path) -> Sweep:
    """A sweep folder, from its sweep.json (no spec needed)."""
    path = Path(path)
    file = path / SWEEP_FILE
    if not file.is_file():
        what = "a run directory" if (path / "config.yaml").exists() else "not a sweep directory"
        raise UserError(
            f"{path} is {what} (no {SWEEP_FILE}); give a folder made by `paczero sweep`"
        )
    data = json.loads(file.read_text())
    cells = [Cell.from_json(c) for c in data["cells"]]
    return Sweep(path, cells, description=data.get("description", ""), spec=data.get("spec"))


def prepare(sweep: Sweep) -> bool:
    """Create the folder and sweep.json, or check that an existing one holds the same cells
    (the spec may add cells: True, and ``grow`` records them once the folder is locked)."""
    file = sweep.path / SWEEP_FILE
    new = json.loads(json.dumps(sweep.to_json()))
    if file.exists():
        return _check_same(sweep)
    if sweep.path.exists() and any(p.name != LOCK_FILE for p in sweep.path.iterdir()):
        raise UserError(
            f"{sweep.path} is not empty and holds no {SWEEP_FILE}; choose another --out"
        )
    sweep.path.mkdir(parents=True, exist_ok=True)
    new["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_json(file, new)
    return False


def _check_same(sweep: Sweep) -> bool:
    """Refuse a spec that changes or drops a cell the folder was made with (its finished
    runs would no longer match it); a spec that only adds cells grows the sweep: True."""
    old = json.loads((sweep.path / SWEEP_FILE).read_text())
    new = json.loads(json.dumps(sweep.to_json()))
    before = {c["name"]: c for c in old.get("cells", [])}
    after = {c["name"]: c for c in new["cells"]}
    if any(after.get(name) != cell for name, cell in before.items()):
        raise UserError(
            f"{sweep.path} holds a sweep with other cells ({_difference(old, new)}); "
            "restore the spec or choose another --out"
        )
    return len(after) > len(before)


def grow(sweep: Sweep) -> None:
    """Record the cells a spec added to an existing sweep (the folder is locked)."""
    file = sweep.path / SWEEP_FILE
    old = json.loads(file.read_text())
    new = json.loads(json.dumps(sweep.to_json()))
    new["created"] = old.get("created")
    new["grown"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_json(file, new)


def _write_json(path: Path, obj: Any) -> None:
    """Atomically (a temporary file renamed into place), without importing torch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _difference(old: dict, new: dict) -> str:
    before = {c["name"]: c for c in old.get("cells", [])}
    after = {c["name"]: c for c in new["cells"]}
    for name in before:
        if name not in after:
            return f"cell '{name}' is gone"
    for name, cell in before.items():
        keys = [k for k in {**cell, **after[name]} if cell.get(k) != after[name].get(k)]
        if keys:
            return f"cell '{name}' changed its {', '.join(keys)}"
    return "the cells differ"  # unreachable while the check above covers every key


@contextlib.contextmanager
def _locked(sweep: Sweep):
    """One sweep process per folder. The lock is inherited by the worker processes, so a
    sweep killed with SIGKILL keeps the folder locked until its workers have stopped."""
    import fcntl

    path = sweep.path / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise UserError(
                f"{sweep.path} is in use by another sweep (pid {holder}, or its runs still "
                "stopping); wait for it to end"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield fd
    finally:
        os.close(fd)


# ---------------------------------------------------------------- one run


def run_state(sweep: Sweep, cell: Cell, seed: int) -> str:
    """finished, train, resume, restart (a run killed before it logged anything or kept
    its secret, or while it made its folder: nothing was released, so it starts again),
    eval, or blocked (files that are not a run where the run should be)."""
    run = sweep.run_path(cell, seed)
    if cell.kind == "eval":
        return "finished" if (run / "eval.json").exists() else "eval"
    if (run / "result.json").exists():
        return "finished"
    if (run / "config.yaml").exists():
        releases = run / "releases.jsonl"
        logged = releases.exists() and releases.stat().st_size > 0
        if not logged and not (run / "private" / "secret.json").exists():
            return "restart"
        return "resume"
    if run.exists():
        from paczero.runs import killed_in_create

        empty = not any(p.is_file() for p in run.rglob("*"))
        return "restart" if empty or killed_in_create(run) else "blocked"
    return "train"


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
    train(copy.deepcopy(cell.config), out=run, overrides=cell.overrides(seed), progress=False)
    return state


def _evaluate(sweep: Sweep, cell: Cell, seed: int) -> None:
    from paczero.evaluation import evaluate

    cfg = cell.resolved(seed)
    public = cfg.public_dict()
    flat = [f"{k}={_yaml_value(v)}" for k, v in _flatten(public) if k != "description"]
    started = time.perf_counter()
    out: dict[str, Any] = {"cell": cell.name, "seed": seed, "model": cfg.model.name}
    for split in cell.splits:
        metrics = evaluate(cfg.model.name, split=split, overrides=flat)
        out[split] = metrics
        out["metric"] = "f1" if "f1" in metrics else "accuracy"
    out["seconds"] = round(time.perf_counter() - started, 3)
    out["config"] = public
    _write_json(sweep.run_path(cell, seed) / "eval.json", out)


def _flatten(data: dict[str, Any], prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


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
            data = json.loads((run / "eval.json").read_text())
            metric = data["metric"]
            shown = [f"{s} {metric} {data[s][metric]:.4f}" for s in cell.splits]
            return ", ".join(shown)
        data = json.loads((run / "result.json").read_text())
        metric = data["metrics"]["metric"]
        return f"test {metric} {data['metrics']['test'][metric]:.4f}"
    except (OSError, KeyError, ValueError):
        return "no result file"


# ---------------------------------------------------------------- the loop


@dataclass
class Summary:
    path: Path
    total: int
    skipped: int = 0
    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        text = (
            f"sweep {self.path}: {len(self.done)} done, {self.skipped} already finished, "
            f"{len(self.failed)} failed (of {self.total} runs)"
        )
        if self.failed:
            text += "; failed: " + ", ".join(name for name, _ in self.failed)
        return text


def default_threads(jobs: int) -> int:
    """The user's OMP_NUM_THREADS when set (several sweeps may share the machine), else
    the cores shared out among the ``jobs`` runs."""
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) >= 1:
        return int(given)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // jobs)


PROGRESS_EVERY_S = 30.0  # a line per running run this often (tests set it lower)


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

    def line(self) -> str:
        seconds = time.perf_counter() - self.started
        if self.secret_rows:
            return f"{self.label} running (its steps are not counted: DP rows are secret)"
        return (
            f"{self.label} running: step {_logged_steps(self.run)}/{self.steps} ({seconds:.0f} s)"
        )


def _watched(sweep: Sweep, cell: Cell, seed: int, label: str) -> Watched:
    from paczero.mechanisms import mechanism_class

    cfg = cell.resolved(seed)
    secret_rows = mechanism_class(cfg.mechanism.name).chooses_rows
    return Watched(label, sweep.run_path(cell, seed), cfg.train.steps, secret_rows)


@contextlib.contextmanager
def _progress_lines(watched: Callable[[], list[Watched]], say) -> Any:
    """A line per run in ``watched()`` every PROGRESS_EVERY_S seconds, from a thread."""
    import threading

    done = threading.Event()

    def loop() -> None:
        while not done.wait(PROGRESS_EVERY_S):
            for item in watched():
                say(item.line())

    thread = threading.Thread(target=loop, name="sweep-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def run_sweep(
    sweep: Sweep,
    jobs: int = 1,
    threads: int | None = None,
    echo: Callable[[str], None] | None = None,
    dry_run: bool = False,
) -> Summary:
    """Run every unfinished (cell, seed): ``jobs`` 1 in this process, else ``jobs`` worker
    processes at a time with ``threads`` each (default cores // jobs). A failed run is
    reported and the sweep goes on; SIGINT/SIGTERM stop it after the runs in flight wrote a
    checkpoint (``SweepInterrupted``)."""
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    say = echo or (lambda line: print(line, flush=True))
    given_threads = threads is not None
    threads = threads or default_threads(jobs)
    if dry_run:
        return _plan(sweep, say)
    grows = prepare(sweep)
    with _locked(sweep) as lock_fd:
        if grows:
            grow(sweep)
        states = {(c.name, s): run_state(sweep, c, s) for c, s in sweep.runs()}
        todo = [(c, s) for c, s in sweep.runs() if states[(c.name, s)] != "finished"]
        summary = Summary(sweep.path, total=len(states), skipped=len(states) - len(todo))
        how = "in this process" if jobs == 1 else f"{jobs} processes at a time"
        source = (
            "" if given_threads or "OMP_NUM_THREADS" not in os.environ else " (OMP_NUM_THREADS)"
        )
        say(
            f"sweep {sweep.path}: {len(states)} runs, {summary.skipped} already finished, "
            f"{len(todo)} to do ({how}, {threads} thread{'s' * (threads > 1)} each{source})"
        )
        if jobs == 1:
            _run_here(sweep, todo, states, threads, summary, say)
        else:
            _run_workers(sweep, todo, states, jobs, threads, lock_fd, summary, say)
    say(summary.line())
    return summary


def _plan(sweep: Sweep, say) -> Summary:
    runs = sweep.runs()
    if (sweep.path / SWEEP_FILE).exists():
        _check_same(sweep)
    say(f"sweep {sweep.path}: {len(runs)} runs (dry run: nothing is written)")
    for cell, seed in runs:
        state = run_state(sweep, cell, seed)
        sets = " ".join(cell.overrides(seed))
        say(f"  {cell.name}/seed-{seed}: {state} (base {cell.base}; {sets})")
    return Summary(sweep.path, total=len(runs))


def _start_text(i: int, n: int, cell: Cell, seed: int, state: str, sweep: Sweep) -> str:
    what = state
    if state == "resume":
        done = _logged_steps(sweep.run_path(cell, seed))
        what = f"resume after step {done}"
    elif state == "restart":
        what = "train again: the killed start had released nothing"
    return f"[{i}/{n}] start  {cell.name}/seed-{seed} ({what})"


def _logged_steps(run: Path) -> int:
    path = run / "releases.jsonl"
    if not path.exists():
        return 0
    return sum(1 for line in path.read_bytes().splitlines() if line.endswith(b"}"))


def _run_here(sweep, todo, states, threads, summary: Summary, say) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    current: list[Watched] = []
    try:
        for i, (cell, seed) in enumerate(todo, 1):
            name = f"{cell.name}/seed-{seed}"
            state = states[(cell.name, seed)]
            say(_start_text(i, len(todo), cell, seed, state, sweep))
            try:
                watch = _watched(sweep, cell, seed, f"[{i}/{len(todo)}]        {name}")
                current[:] = [watch]
                with _progress_lines(lambda: list(current), say):
                    execute(sweep, cell, seed)
            except Interrupted as err:
                raise SweepInterrupted(
                    f"sweep interrupted during {name} ({err}); rerun the sweep to continue",
                    err.exit_code - 128,
                ) from None
            except UserError as err:
                _failed(summary, say, i, len(todo), name, str(err))
                continue
            except Exception as err:  # noqa: BLE001 - one broken run must not stop the sweep
                _failed(summary, say, i, len(todo), name, f"{type(err).__name__}: {err}")
                continue
            summary.done.append(name)
            say(f"[{i}/{len(todo)}] done   {done_text(sweep, cell, seed, name, watch)}")
    finally:
        torch.set_num_threads(before)


def _failed(summary: Summary, say, i: int, n: int, name: str, error: str, log: Path | None = None):
    line = error.strip().splitlines()[-1] if error.strip() else "failed"
    summary.failed.append((name, line))
    where = f" (log: {log})" if log else ""
    say(f"[{i}/{n}] FAILED {name}: {line}{where}")


def _run_workers(sweep, todo, states, jobs, threads, lock_fd, summary: Summary, say) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.setdefault("PYTHONWARNINGS", "ignore")
    pending = list(enumerate(todo, 1))
    running: dict[int, tuple[subprocess.Popen, Cell, int, float, Path, int]] = {}
    watched: dict[int, Watched] = {}
    stop: list[int] = []  # the signal that stops the sweep
    forwarded = False

    def handler(signum, frame):
        if not stop:
            stop.append(signum)

    # Progress lines come from this loop, not a thread: the kernel sends a worker its
    # parent-death signal at each exit of the thread that forked it, and again when the
    # next thread of a dying sweep exits (a second SIGTERM stops a run without a
    # checkpoint); with one thread a killed sweep sends each worker one SIGTERM.
    next_lines = time.monotonic() + PROGRESS_EVERY_S
    with handled(handler):
        while pending or running:
            if time.monotonic() >= next_lines:
                for item in [w for _, w in sorted(watched.items())]:
                    say(item.line())
                next_lines = time.monotonic() + PROGRESS_EVERY_S
            while pending and len(running) < jobs and not stop:
                i, (cell, seed) = pending.pop(0)
                state = states[(cell.name, seed)]
                say(_start_text(i, len(todo), cell, seed, state, sweep))
                log = sweep.path / cell.name / f"seed-{seed}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                with open(log, "a") as handle:
                    handle.write(f"== {datetime.now().isoformat(timespec='seconds')} {state}\n")
                    start = handle.tell()
                    proc = subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "paczero.sweep",
                            str(sweep.path),
                            cell.name,
                            str(seed),
                        ],
                        stdin=subprocess.DEVNULL,
                        stdout=handle,
                        stderr=subprocess.STDOUT,
                        env=env,
                        pass_fds=(lock_fd,),
                        preexec_fn=_die_with_parent(os.getpid()),
                    )
                running[i] = (proc, cell, seed, log, start)
                watched[i] = _watched(
                    sweep, cell, seed, f"[{i}/{len(todo)}]        {cell.name}/seed-{seed}"
                )
            if stop and running and not forwarded:
                for proc, *_ in running.values():
                    if proc.poll() is None:
                        with contextlib.suppress(ProcessLookupError):
                            proc.send_signal(signal.SIGTERM)  # finish the step, checkpoint
                forwarded = True  # once: a second signal would kill the worker at once
            time.sleep(0.1)
            for i in list(running):
                proc, cell, seed, log, start = running[i]
                if proc.poll() is None:
                    continue
                del running[i]
                watch = watched.pop(i)
                name = f"{cell.name}/seed-{seed}"
                if proc.returncode == 0:
                    summary.done.append(name)
                    say(f"[{i}/{len(todo)}] done   {done_text(sweep, cell, seed, name, watch)}")
                elif stop and proc.returncode in (130, 143):
                    say(f"[{i}/{len(todo)}] stopped {name} (checkpoint written)")
                elif stop and proc.returncode < 0:
                    say(f"[{i}/{len(todo)}] stopped {name} (killed; its release log resumes it)")
                else:
                    _failed(summary, say, i, len(todo), name, _error_line(log, start), log)
            if stop and not running:
                break
    if stop:
        raise SweepInterrupted(
            "sweep interrupted; runs in flight wrote a checkpoint; rerun the sweep to continue",
            stop[0],
        )


def _error_line(log: Path, start: int) -> str:
    """The worker's one-line error: its last 'paczero: error:' line, else its last line."""
    try:
        with open(log, "rb") as handle:
            handle.seek(start)
            lines = [x.strip() for x in handle.read().decode(errors="replace").splitlines()]
    except OSError:
        return "failed (no log)"
    lines = [x for x in lines if x]
    for line in reversed(lines):
        if line.startswith("paczero: error: "):
            return line.removeprefix("paczero: error: ")
    return lines[-1] if lines else "failed with no output"


def _die_with_parent(parent: int):
    """Linux: a worker gets SIGTERM (finish the step, checkpoint, stop) when the sweep dies.
    prctl is looked up here, so the forked child only makes the call."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: workers outlive a killed sweep
        prctl = None

    def setup() -> None:
        if prctl is not None:
            prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the sweep died before prctl took effect
            os._exit(143)

    return setup


# ---------------------------------------------------------------- worker process


def _worker(argv: list[str]) -> int:
    """`python -m paczero.sweep SWEEP_DIR CELL SEED`: one run, errors as one line."""
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
    sys.exit(_worker(sys.argv[1:]))
