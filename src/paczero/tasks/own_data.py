"""Your own data: ``data.train`` (and ``data.dev`` / ``data.test``) as CSV, TSV, JSON, JSON
Lines or Parquet files or folders, or a hub data set, read through ``datasets``.

A task type declares what it needs from a row (``RowSchema``: its columns and the check of
each row); ``own_splits`` reads the files and checks every row before any model loads: each
bad input is one line naming the file, the column or the row.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paczero.errors import UserError
from paczero.tasks.options import DataConfig
from paczero.tasks.splits import Splits
from paczero.textfiles import decode_utf8, read_bytes
from paczero.values import label_key

FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
TEXT_FORMATS = ("csv", "tsv", "json")  # checked for UTF-8 first (the error names the byte)


@dataclass(frozen=True)
class RowSchema:
    """What a task type needs from each row, checked before any model loads.

    ``columns`` maps each column the rows must have to what names it in the config (for
    the error); ``check(row, where)`` raises ``UserError`` naming ``where`` (the file and
    the row) when a value cannot be used, and returns the example the task encodes.
    """

    columns: dict[str, str]
    check: Callable[[dict, str], dict]
    label: str | None = None  # the label column of a classification task


@dataclass
class Table:
    """The rows of one source, and the name errors give it (a file, or a hub split)."""

    rows: list[dict]
    columns: list[str]
    name: str


def cell_text(value: Any, where: str) -> str:
    """A cell used as text: a string or a number, not empty."""
    if isinstance(value, (list, dict)):
        raise UserError(f"{where} is not text (got a {type(value).__name__})")
    text = "" if value is None else str(value)
    if not text.strip():
        raise UserError(f"{where} is empty")
    return text


def answer_list(value: Any, where: str | None = None) -> list[str]:
    """Acceptable answers: a list of strings, one string, or the hub's SQuAD form
    ``{"text": [...]}``; every answer non-empty (checked when ``where`` names the cell)."""
    if isinstance(value, dict) and "text" in value:
        value = value["text"]
    answers = value if isinstance(value, list) else [value]
    if where is not None:
        for i, answer in enumerate(answers):
            cell_text(answer, f"{where} answer {i + 1}")
    return [str(a) for a in answers]


def _warn_single_label(rows: list[dict], label: str | None, role: str) -> None:
    """A carved dev or test split whose rows all share one label measures nothing: the
    untrained model that always answers it scores 1.0, one that learned may not. The
    label is not named (a carved split of the pool's source is private)."""
    if label is None or len(rows) < 2:
        return
    if len({str(r.get(label)) for r in rows}) == 1:
        print(
            f"paczero: warning: the {role} split carved from your data ({len(rows)} rows) "
            f"holds a single label: its accuracy cannot tell a model that learned from one "
            f"that did not; raise data.num_{role} or give a data.{role} file",
            file=sys.stderr,
            flush=True,
        )


def own_splits(data: DataConfig, schema: RowSchema) -> Splits:
    """Pool, dev and test from ``data.train`` (and ``data.dev`` / ``data.test``).

    The pool is ``data.num_train`` units drawn from data.train with ``data.seed``; a unit is
    a row, or every row sharing the value of ``data.group_field``. A dev or test file gives
    its rows; when only one is given, the other is carved from it (disjoint); when neither
    is, both are carved from data.train, by units, disjoint from the pool (and then not
    covered by the guarantee, which the report says).
    """
    if not data.train:
        raise UserError(
            "data.train is not set: point it at your data (a CSV, TSV, JSON, JSON Lines or "
            "Parquet file or folder, or a hub data set id)"
        )
    train = read_table(data.train, "train", data)
    columns = dict(schema.columns)
    if data.group_field:
        columns[data.group_field] = "data.group_field"
    rows = checked_rows(train, columns, schema.check)
    units = _group_units(train, data.group_field) if data.group_field else None
    n_units = len(rows) if units is None else len(units)

    files = {role: read_table(getattr(data, role), role, data) for role in ("dev", "test")
             if getattr(data, role)}  # fmt: skip
    carved = [role for role in ("dev", "test") if role not in files]
    public = next(iter(files.values()), None)  # carve a missing one from the given file
    # a dev or test file that is data.train (a symlink to it, a copy of it) is its rows
    pool_sourced = {role for role in files if same_source(data, "train", role)}
    if pool_sourced and carved:  # carved from that file: the pool's source too
        pool_sourced.update(carved)
    wanted = {"dev": data.num_dev, "test": data.num_test}
    from_train = carved if public is None else []
    need = data.num_train + sum(wanted[r] for r in from_train)
    if n_units < need:
        _too_few(train.name, data, len(rows), units, need, from_train, public is not None)
    perm = np.random.default_rng(data.seed).permutation(n_units)
    taken = {"pool": np.sort(perm[: data.num_train])}
    start = data.num_train
    for role in from_train:
        taken[role] = np.sort(perm[start : start + wanted[role]])
        start += wanted[role]

    def rows_of(chosen: np.ndarray) -> np.ndarray:
        if units is None:
            return chosen
        return np.concatenate([units[u] for u in chosen]).astype(np.int64)

    pool_idx = rows_of(taken["pool"])
    parts: dict[str, tuple[list[dict], np.ndarray]] = {}
    for role in from_train:
        idx = rows_of(taken[role])
        parts[role] = ([rows[i] for i in idx], idx)
    if public is not None:
        parts.update(_public_parts(files, carved, wanted, schema, data.seed))
    for role in carved:
        _warn_single_label(parts[role][0], schema.label, role)
    pool_units = None if units is None else _pool_units(units, taken["pool"])
    return Splits(
        pool=[rows[i] for i in pool_idx],
        dev=parts["dev"][0],
        test=parts["test"][0],
        pool_indices=pool_idx,
        dev_indices=parts["dev"][1],
        test_indices=parts["test"][1],
        test_requested=data.num_test,
        provenance="own data",
        dev_from_pool_source="dev" in from_train or "dev" in pool_sourced,
        test_from_pool_source="test" in from_train or "test" in pool_sourced,
        units=pool_units,
        unit_field=data.group_field,
    )


def _too_few(name, data: DataConfig, n_rows, units, need, from_train, dev_or_test_given):
    """The one-line refusal of a file with fewer rows (units) than the splits draw."""
    keys = " + ".join(["data.num_train", *(f"data.num_{r}" for r in from_train)])
    n_units = n_rows if units is None else len(units)
    have = (
        f"{n_units} rows"
        if units is None
        else f"{n_units} units ({n_rows} rows; a unit is the rows that share "
        f"data.group_field '{data.group_field}')"
    )
    raise UserError(
        f"{name} has {have}, fewer than {keys} = {need}; lower them"
        + ("" if dev_or_test_given else ", or give separate data.dev / data.test files")
    )


def _pool_units(units: list[np.ndarray], chosen: np.ndarray) -> list[np.ndarray]:
    """The pool's units as positions in the pool (its rows are the chosen units' rows in
    order)."""
    sizes = [len(units[u]) for u in chosen]
    ends = np.cumsum(sizes)
    return [np.arange(e - n, e, dtype=np.int64) for e, n in zip(ends, sizes, strict=True)]


def same_source(data: DataConfig, role: str, other: str) -> bool:
    """Whether ``data.<other>`` names the rows of ``data.<role>``: the same local file or
    folder (through symlinks too), a copy with the same bytes, or the same hub split."""
    a, b = getattr(data, role), getattr(data, other)
    if not a or not b:
        return False
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve() or _content_digest(pa) == _content_digest(pb)
    splits = data.splits
    return a == b and getattr(splits, role) == getattr(splits, other)


def dev_from_private_source(data: DataConfig) -> bool:
    """Whether a run's dev rows are rows of data.train (the private source): carved from
    it, or read from a dev (or test) file that is it. A preset's split is a public
    benchmark's."""
    if not data.train:
        return False
    if data.dev:
        return same_source(data, "train", "dev")
    return not data.test or same_source(data, "train", "test")


def _content_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's data files (names and bytes, sorted)."""
    digest = hashlib.sha256()
    files = _data_files(path) if path.is_dir() else [path]
    for file in files:
        digest.update(file.name.encode() + b"\0" if path.is_dir() else b"")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


CARVED_SHARE = 10  # a dev or test set carved from data.train: 1/10 of its units by default
SIZE_KEYS = ("num_train", "num_dev", "num_test")


def sized_to_own_files(data: Any) -> Any:
    """A raw ``data`` section with its sizes fitted to one's own local files (a no-op for
    the presets' data and once the sizes are numbers); ``RunConfig`` calls it."""
    if not isinstance(data, dict):
        return data
    defaults = {k: DataConfig.model_fields[k].default for k in SIZE_KEYS}
    return own_sizes(data, defaults)


def own_sizes(section: dict[str, Any], defaults: dict[str, int]) -> dict[str, Any]:
    """The raw ``data`` section with ``data.num_*`` sized to one's own local files where
    not given, and ``num_train: all`` resolved: dev and test default to what the dev/test
    files hold (half each of the one file given; the other is carved from it), else to a
    1/10 share of data.train's units each (at most the preset defaults, ``defaults``); the
    pool to every unit left. A hub data set keeps ``defaults`` (its size is unknown
    before it is read). The pool size is public (every report states it), so reading it
    off the file adds nothing to what a run shows."""
    train = section.get("train")
    wants_all = section.get("num_train") == "all"
    missing = [k for k in SIZE_KEYS if section.get(k) is None]
    if not isinstance(train, str) or not train or not (wants_all or missing):
        return section
    path = Path(train).expanduser()
    if not path.exists():
        if wants_all:
            raise ValueError(
                "data.num_train 'all' needs data.train to be a local file or folder (a hub "
                "data set's size is not known before it is read); give a number"
            )
        return section
    sizes = {k: section[k] for k in SIZE_KEYS if section.get(k) is not None and k != "num_train"}
    files = {}
    for role in ("dev", "test"):
        source = section.get(role)
        if isinstance(source, str) and source:
            if not Path(source).expanduser().exists():
                return section if not wants_all else {**section, "num_train": "all"}
            files[role] = len(_read_files(Path(source).expanduser(), f"data.{role}").rows)
    units = _count_units(_read_files(path, "data.train"), section.get("group_field"))
    carved_from_train = []
    if len(files) == 2:
        for role, rows in files.items():
            sizes.setdefault(f"num_{role}", rows)
    elif files:
        ((given, rows),) = files.items()
        other = "test" if given == "dev" else "dev"
        sizes.setdefault(f"num_{other}", max(1, rows // 2))
        sizes.setdefault(f"num_{given}", max(1, rows - sizes[f"num_{other}"]))
    else:
        carved_from_train = ["num_dev", "num_test"]
        for key in carved_from_train:
            sizes.setdefault(key, max(1, min(defaults[key], units // CARVED_SHARE)))
    if wants_all or section.get("num_train") is None:
        left = units - sum(sizes[k] for k in carved_from_train)
        sizes["num_train"] = max(1, left)
    return {**section, **sizes}


def _count_units(table: Table, group_field: Any) -> int:
    """Rows, or distinct values of data.group_field (rows when the column is missing: the
    data checks say so later, in one line)."""
    if not isinstance(group_field, str) or group_field not in table.columns:
        return len(table.rows)
    groups = {label_key(row[group_field]) for row in table.rows}
    if len(groups) == 1:  # said before a size built from it (M larger than 1 unit) is refused
        raise one_group(group_field, table.name, next(iter(groups)))
    return len(groups)


def _public_parts(
    files: dict[str, Table], carved: list[str], wanted: dict[str, int], schema, seed: int
) -> dict[str, tuple[list[dict], np.ndarray]]:
    """Dev and test rows from the given file(s): each from its own, a missing one carved
    from the other file, disjoint."""
    out = {}
    for key, (role, table) in enumerate(files.items(), start=1):
        rows = checked_rows(table, schema.columns, schema.check)
        roles = [role, *carved]
        need = sum(wanted[r] for r in roles)
        if len(rows) < need:
            keys = " + ".join(f"data.num_{r}" for r in roles)
            raise UserError(
                f"{table.name} has {len(rows)} rows, fewer than {keys} = {need}; lower them"
            )
        perm = np.random.default_rng([seed, key]).permutation(len(rows))
        start = 0
        for r in roles:
            idx = np.sort(perm[start : start + wanted[r]])
            out[r] = ([rows[i] for i in idx], idx)
            start += wanted[r]
    return out


def checked_rows(table: Table, columns: dict[str, str], check: Callable) -> list[dict]:
    """Every row through the task's check, after the columns are found."""
    for column, named in columns.items():
        if column not in table.columns:
            raise UserError(
                f"{table.name} has no column '{column}' ({named}); its columns are: "
                f"{', '.join(table.columns) or 'none'}"
            )
    if not table.rows:
        raise UserError(f"{table.name} has no rows")
    return [check(row, f"{table.name} row {i + 1}") for i, row in enumerate(table.rows)]


def _group_units(table: Table, name: str) -> list[np.ndarray]:
    """The rows of each group, in the order groups first appear; refused: an empty group
    value, or a single group (one unit: nothing to protect it among)."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(table.rows):
        key = label_key(row[name])
        if not key:
            raise UserError(
                f"{table.name} row {i + 1}: column '{name}' (data.group_field) is empty"
            )
        groups.setdefault(key, []).append(i)
    if len(groups) == 1:
        raise one_group(name, table.name, next(iter(groups)))
    return [np.asarray(rows, dtype=np.int64) for rows in groups.values()]


def one_group(name: str, table: str, value: Any) -> UserError:
    return UserError(
        f"data.group_field '{name}': every row of {table} has the same value ({value!r}), so "
        "the pool would be one privacy unit; choose a column that names the user (or "
        "patient) of each row, or drop data.group_field"
    )


def read_table(source: str, role: str, data: DataConfig, key: str | None = None) -> Table:
    """The rows of a local file or folder, or of a hub data set's split (``role``'s, in
    ``data.splits``); errors name ``key`` (default ``data.<role>``)."""
    path = Path(source).expanduser()
    key = key or f"data.{role}"
    if path.exists():
        return _read_files(path, key)
    if path.suffix.lower() in FORMATS or source.startswith((".", "/", "~")):
        raise UserError(f"{key} file {source} not found")
    return _read_hub(source, getattr(data.splits, role), data.hub_config, key)


def _read_files(path: Path, key: str) -> Table:
    if path.is_dir():
        files = _data_files(path)
        if not files:
            raise UserError(f"{key} folder {path} holds no {_format_names()} file")
        name = f"{path}/"
    else:
        if path.suffix.lower() not in FORMATS:
            raise UserError(f"{key} {path}: unknown format '{path.suffix}'; use {_format_names()}")
        files, name = [path], str(path)
    kinds = {FORMATS[p.suffix.lower()] for p in files}
    if len(kinds) > 1:
        raise UserError(f"{key} folder {path} mixes formats ({', '.join(sorted(kinds))}): use one")
    kind = kinds.pop()
    for file in files:  # the one-line error names the file, line, column and byte
        if kind in TEXT_FORMATS:
            _check_text_table(file, kind, decode_utf8(read_bytes(file, f"{key} file"), file))
        else:
            _check_parquet_footer(file)
    options: dict[str, Any] = {}
    if kind in ("csv", "tsv"):  # every cell as written: "NA" or "null" is text, not missing
        options.update(na_filter=False)
    if kind == "tsv":  # as GLUE's files: tabs separate, quotes are text
        options.update(sep="\t", quoting=csv.QUOTE_NONE)
    builder = {"tsv": "csv"}.get(kind, kind)
    # A temporary cache: the private rows are not copied into ~/.cache/huggingface.
    with tempfile.TemporaryDirectory(prefix="paczero-data-") as cache, _quiet_datasets():
        import datasets

        try:
            loaded = datasets.load_dataset(
                builder,
                data_files=[str(f) for f in files],
                split="train",
                cache_dir=cache,
                keep_in_memory=True,
                **options,
            )
        except Exception as err:  # noqa: BLE001 - the library's many parse errors, one line
            if len(files) > 1 and "cast" in _cause(err).lower():
                raise UserError(
                    f"cannot read {key} {name}: its files do not all have the same columns "
                    f"({', '.join(f.name for f in files[:4])}); give one file, or a folder of "
                    "files with the same columns"
                ) from None
            raise UserError(f"cannot read {key} {name}: {_cause(err)}") from None
        return Table(loaded.to_list(), list(loaded.column_names), name)


def _data_files(folder: Path) -> list[Path]:
    """The files of a data folder that are read: not hidden, of a known format."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FORMATS
    )  # fmt: skip


def _check_text_table(file: Path, kind: str, text: str) -> None:
    """What the parsers would misread or name badly: an empty file, a CSV header that names
    a column twice (one column would replace the other), a header with no rows, a row with
    more or fewer cells than the header (pandas would take extra cells as the index)."""
    if not text.strip():
        raise UserError(f"{file} is empty: no rows")
    if kind == "json":
        _check_json(file, text)
        return
    options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if kind == "tsv" else {}
    reader = csv.reader(io.StringIO(text, newline=""), **options)
    try:
        header = next(reader)
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise UserError(f"{file} line 1: the header names column '{repeated[0]}' twice")
        rows = 0
        for cells in reader:
            if not cells:  # a blank line (the parser skips it too)
                continue
            rows += 1
            if len(cells) != len(header):
                raise UserError(
                    f"{file} line {reader.line_num}: {len(cells)} cells under a header of "
                    f"{len(header)} columns ({', '.join(header)})"
                )
    except csv.Error as err:
        raise UserError(f"{file} line {reader.line_num}: {err}") from None
    if not rows:
        raise UserError(f"{file} has a header but no rows")


class _TwiceError(ValueError):
    """A JSON object names a key twice (the parser would keep the last value)."""


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise _TwiceError(key)
    return dict(pairs)


def _check_json(file: Path, text: str) -> None:
    """A JSON document, or JSON Lines with an object on each line and each key once: the
    error names the file's line (the reader's says "Trailing data at position 79")."""
    if file.suffix.lower() == ".json":
        try:
            json.loads(text, object_pairs_hook=_once)
            return
        except _TwiceError as err:
            raise UserError(f"{file}: an object names key '{err}' twice") from None
        except json.JSONDecodeError as err:
            if err.msg != "Extra data":  # else JSON Lines in a .json file: line by line
                raise UserError(
                    f"{file} line {err.lineno}: not valid JSON ({err.msg}, column {err.colno})"
                ) from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, object_pairs_hook=_once)
        except _TwiceError as err:
            raise UserError(f"{file} line {number}: key '{err}' appears twice") from None
        except json.JSONDecodeError as err:
            raise UserError(
                f"{file} line {number}: not valid JSON ({err.msg}, column {err.colno}); JSON "
                "Lines hold one object per line"
            ) from None
        if not isinstance(value, dict):
            raise UserError(
                f'{file} line {number}: a row must be a JSON object ({{"column": value}}), '
                f"not a {type(value).__name__}"
            )


PARQUET_MAGIC = b"PAR1"


def _check_parquet_footer(file: Path) -> None:
    """A Parquet file ends with its metadata's length and PAR1; a length beyond the file
    would make the reader allocate it before failing (gigabytes for a 300-byte file)."""
    size = file.stat().st_size
    with open(file, "rb") as handle:
        start = handle.read(4)
        handle.seek(max(size - 8, 0))
        tail = handle.read(8)
    if size < 12 or start != PARQUET_MAGIC or tail[4:] != PARQUET_MAGIC:
        raise UserError(f"{file} is not a Parquet file (no PAR1 marks at its start and end)")
    footer = int.from_bytes(tail[:4], "little")
    if footer + 12 > size:
        raise UserError(
            f"{file} is damaged: its footer claims {footer} bytes of metadata, the file has "
            f"{size} bytes"
        )


def _read_hub(source: str, split: str, config: str | None, key: str) -> Table:
    name = f"{source}{f' ({config})' if config else ''} split '{split}'"
    with _quiet_datasets():
        import datasets

        try:
            loaded = datasets.load_dataset(source, config, split=split)
        except Exception as err:  # noqa: BLE001 - any hub failure means the same to the user
            raise UserError(
                f"{key} '{source}' is not a local file or folder, and the hub data set could "
                f"not be loaded ({_cause(err)})"
            ) from None
        return Table(loaded.to_list(), list(loaded.column_names), name)


@contextlib.contextmanager
def _quiet_datasets() -> Iterator[None]:
    """``datasets``' bars and log lines off while it reads (our errors say what failed)."""
    import datasets
    from datasets.utils import logging as ds_logging

    bars = not datasets.is_progress_bar_enabled()
    level = ds_logging.get_verbosity()
    datasets.disable_progress_bars()
    ds_logging.set_verbosity(ds_logging.CRITICAL)
    try:
        yield
    finally:
        ds_logging.set_verbosity(level)
        if not bars:
            datasets.enable_progress_bars()


def _cause(err: BaseException) -> str:
    """The first line of the most specific message in the chain (the parser's, not the
    wrapper's "An error occurred while generating the dataset")."""
    chain = []
    while err is not None and len(chain) < 8:
        chain.append(err)
        err = err.__cause__ or err.__context__
    for item in reversed(chain):
        text = str(item).strip()
        if text and "error occurred while generating" not in text:
            return f"{type(item).__name__}: {text.splitlines()[0][:200]}"
    return type(chain[0]).__name__


def _format_names() -> str:
    return ", ".join(FORMATS)
