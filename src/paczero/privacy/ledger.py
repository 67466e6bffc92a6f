"""Append-only, fsynced JSON-lines logs: a release is durable before it is applied."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class JsonlLog:
    """One JSON object per line; ``durable`` logs fsync every line (the write-ahead ledger)."""

    def __init__(self, path: Path, durable: bool = False, mode: int | None = None):
        self.path = Path(path)
        self.durable = durable
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held open for the run)
        if mode is not None:
            os.chmod(self.path, mode)

    def append(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, sort_keys=True, allow_nan=False) + "\n")
        self._file.flush()
        if self.durable:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete records; a torn last line (a crash mid-write) is ignored."""
    records = []
    if not Path(path).exists():
        return records
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def repair_jsonl(path: Path) -> None:
    """Cut a torn last line off, so appending after a crash starts on a fresh line."""
    path = Path(path)
    if not path.exists():
        return
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())
