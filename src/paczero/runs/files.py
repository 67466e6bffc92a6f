"""Writing and reading a run's files: whole or not at all (a temporary file fsynced and
renamed into place), and a damaged JSON file refused in one line."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from paczero.errors import UserError
from paczero.textfiles import decode_utf8, read_bytes

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def notice(message: str) -> None:
    """One line on stderr for something the user should know that is not an error."""
    print(f"paczero: note: {message}", file=sys.stderr, flush=True)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_jsonl(path: Path, records: Iterable[dict[str, Any]], mode: int = 0o644) -> None:
    """All records as JSON Lines, or none (``atomic_write_bytes``)."""
    text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def new_output_file(out: str | Path, option: str = "--out") -> Path:
    """``out`` where a new file may be written: never over an existing one (nothing lost)."""
    path = Path(out).expanduser()
    if not str(out).strip():
        raise UserError(f"{option} is empty: give a file path for the predictions (JSON Lines)")
    if path.is_dir():
        raise UserError(f"{option} {out} is a directory; give a file path such as {path}/out.jsonl")
    if path.exists():
        raise UserError(f"{option} {out} exists; choose another name or remove it first")
    if not path.parent.is_dir():
        raise UserError(f"{option} {out}: the folder {path.parent} does not exist")
    return path


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
    fsync_dir(path.parent)


def write_json(path: Path, obj: Any, mode: int | None = None) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode(), mode)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from a run file, or one line saying what is wrong with it."""
    text = decode_utf8(read_bytes(path, what), path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is damaged (not valid JSON: {err.msg})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is damaged (not a JSON object)")
    return data


def remove_entry(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)
