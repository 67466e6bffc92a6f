"""Append-only, fsynced JSON-lines logs: a release is durable before it is applied.

The release logs are hash-chained: every record carries ``prev`` (the ``sha`` of the record
before it, ``GENESIS`` for the first) and ``sha`` (SHA-256 of its own canonical JSON without
``sha``). ``read_chain`` checks the chain, the step sequence and every line, so a damaged,
edited, reordered or spliced log is refused with the line number instead of being read up
to the damage. The only damage tolerated is the one a crash leaves: a last line without its
newline (never committed, since the fsync comes after the whole line), which is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from paczero.errors import UserError

GENESIS = "0" * 64  # ``prev`` of the first record of a chain


def dumps(record: dict[str, Any]) -> str:
    """The canonical form of a record: sorted keys, no NaN, ASCII."""
    return json.dumps(record, sort_keys=True, allow_nan=False)


def record_sha(record: dict[str, Any]) -> str:
    """SHA-256 of the record's canonical JSON without its own ``sha``."""
    body = {k: v for k, v in record.items() if k != "sha"}
    return hashlib.sha256(dumps(body).encode()).hexdigest()


class JsonlLog:
    """One JSON object per line; ``durable`` logs fsync every line (the write-ahead ledger);
    ``chained`` logs add ``prev`` and ``sha`` to every record.

    Lines are written with unbuffered writes, so a failed write (a full disk) can leave at
    most a torn last line, never a remainder that a later flush completes. A torn last line
    left by an earlier crash is cut when the log is opened, before anything is appended.
    """

    def __init__(
        self, path: Path, durable: bool = False, mode: int | None = None, chained: bool = False
    ):
        self.path = Path(path)
        self.durable = durable
        self.chained = chained
        repair_jsonl(self.path)
        self.shas: list[str] = []
        if chained:
            self.shas = [r["sha"] for r in read_chain(self.path)]
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (held open for the run)
        if mode is not None:
            os.chmod(self.path, mode)

    @property
    def head(self) -> str:
        """``sha`` of the last record (``GENESIS`` for an empty chained log)."""
        return self.shas[-1] if self.shas else GENESIS

    def append(self, record: dict[str, Any]) -> None:
        if self.chained:
            record = {**record, "prev": self.head}
            record["sha"] = record_sha(record)
        data = (dumps(record) + "\n").encode()
        view = memoryview(data)
        while view:  # a short write (a full disk) is followed by a write that raises
            view = view[self._file.write(view) :]
        if self.durable:
            os.fsync(self._file.fileno())
        if self.chained:
            self.shas.append(record["sha"])

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _complete_lines(path: Path) -> list[bytes]:
    """The newline-terminated lines of a file (a torn last line is left out)."""
    from paczero.textfiles import read_bytes

    data = read_bytes(path, "log")
    return data[: data.rfind(b"\n") + 1].split(b"\n")[:-1]


def read_records(path: Path) -> list[dict[str, Any]]:
    """All records of a plain JSON-lines log (metrics.jsonl); a torn last line is ignored,
    any other line that is not a JSON object is refused with its line number."""
    path = Path(path)
    if not path.exists():
        return []
    return [_parse(line, path, number) for number, line in enumerate(_complete_lines(path), 1)]


def read_chain(path: Path, steps: bool = True) -> list[dict[str, Any]]:
    """The records of a hash-chained log, each checked (see the module docstring); with
    ``steps`` the records must be steps 0, 1, 2, ... in order."""
    path = Path(path)
    if not path.exists():
        return []
    records: list[dict[str, Any]] = []
    prev = GENESIS
    for number, line in enumerate(_complete_lines(path), 1):
        record = _parse(line, path, number)
        if "sha" not in record or "prev" not in record:
            raise LogError(path, number, "has no hash chain (prev, sha): not a paczero release log")
        if record["prev"] != prev:
            raise LogError(
                path, number, "does not follow the line before it (its prev hash differs): "
                "a line was removed, reordered or inserted"
            )  # fmt: skip
        if record_sha(record) != record["sha"]:
            raise LogError(path, number, "was edited after it was written (its hash differs)")
        if steps and record.get("step") != len(records):
            raise LogError(
                path, number, f"holds step {record.get('step')!r} where step {len(records)} "
                "belongs: a duplicated or out-of-order step"
            )  # fmt: skip
        prev = record["sha"]
        records.append(record)
    return records


def _parse(line: bytes, path: Path, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise LogError(path, number, "is not a JSON record") from None
    if not isinstance(record, dict):
        raise LogError(path, number, "is not a JSON record")
    return record


class LogError(UserError):
    """A damaged log: one line naming the file and the line."""

    def __init__(self, path: Path, line: int, problem: str):
        super().__init__(f"{path} line {line} {problem}")
        self.path, self.line, self.problem = Path(path), line, problem


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """All complete records of a JSON-lines file (``read_records``; kept for callers)."""
    return read_records(path)


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
