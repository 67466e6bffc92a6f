"""The sweep folder: ``sweep.json`` (the resolved cells, so that a table or a plot needs no
spec), checked against the spec on a rerun, grown when the spec adds cells, and locked by
one sweep process at a time."""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from paczero.errors import UserError
from paczero.studies.spec import SWEEP_FILE, Cell, Sweep

LOCK_FILE = ".lock"


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
        return check_same(sweep)
    if sweep.path.exists() and any(p.name != LOCK_FILE for p in sweep.path.iterdir()):
        raise UserError(
            f"{sweep.path} is not empty and holds no {SWEEP_FILE}; choose another --out"
        )
    sweep.path.mkdir(parents=True, exist_ok=True)
    new["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(file, new)
    return False


def check_same(sweep: Sweep) -> bool:
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
    write_json(file, new)


def write_json(path: Path, obj: Any) -> None:
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
def locked(sweep: Sweep):
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
