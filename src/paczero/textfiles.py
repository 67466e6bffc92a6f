"""One reader for every text file paczero reads: UTF-8 or a one-line error naming the place.

Configs, SST-2 TSVs, SQuAD JSON and the run directory's logs all go through ``read_text``,
so a file with bytes that are not UTF-8 is refused with its path, line and byte offset
instead of a UnicodeDecodeError traceback.
"""

from __future__ import annotations

from pathlib import Path

from paczero.errors import UserError

BOM = "\ufeff"


def decode_utf8(data: bytes, where: str | Path) -> str:
    """``data`` as text; a leading byte-order mark is dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        bad = data[err.start : err.start + 1].hex()
        raise UserError(
            f"{where} line {line}, column {column} (byte offset {err.start}): byte 0x{bad} is "
            "not UTF-8; save the file as UTF-8"
        ) from None
    return text.removeprefix(BOM)


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """The bytes of a file, or one line saying why it cannot be read."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} {path} not found") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a directory, not a file") from None
    except OSError as err:
        raise UserError(f"cannot read {what} {path}: {err.strerror or err}") from None


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file (see ``decode_utf8``)."""
    return decode_utf8(read_bytes(path, what), path)
