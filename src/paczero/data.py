"""Data: a user's files or a hub data set through ``datasets``, SST-2 and SQuAD's own files,
the seeded pool / dev / test split, and the privacy units of the pool.

A task type declares what it needs from a row (``RowSchema``: its columns and the check of
each row); ``own_splits`` reads ``data.train`` (and ``data.dev`` / ``data.test``) as CSV,
TSV, JSON, JSON Lines or Parquet files or folders, or a hub data set, and checks every row
before any model loads: each bad input is one line naming the file, the column or the row.
The presets also read their published files (``load_sst2``, ``load_squad``) when no
``data.train`` is given. Sampling is public randomness: the pool, dev and test rows are a
pure function of ``data.seed`` and the data.

SST-2 examples are plain dicts ``{"sentence": str, "label": int}`` (0 negative, 1
positive), kept exactly as in GLUE (sentences end with a space; the task strips them).

The privacy unit is one row, or, with ``data.group_field``, every row that shares the
field's value (a user, a patient): the pool is sampled by units, and ``Splits.units`` holds
each pool unit's rows.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paczero.config import DataConfig, TaskConfig, label_key
from paczero.errors import UserError
from paczero.textfiles import decode_utf8, read_bytes, read_text

Example = dict  # {"sentence": str, "label": int}

HUB_DATASET = ("nyu-mll/glue", "sst2")
SETUP_HINT = "set PACZERO_DATA_DIR (e.g. PACZERO_DATA_DIR=../shared/data) or data.dir"


def load_sst2(cfg: DataConfig) -> dict[str, list[dict]]:
    """{"train": [...], "validation": [...]}; the lists are fresh, the dicts shared (read-only)."""
    if cfg.source == "synthetic":
        n_train = max(2 * (cfg.num_train + cfg.num_dev), 64)
        return synthetic_sst2(n_train, max(cfg.num_test, 32), cfg.seed)
    if cfg.dir:
        train_path, dev_path = _sst2_files(Path(cfg.dir).expanduser())
        return {"train": list(read_tsv(train_path)), "validation": list(read_tsv(dev_path))}
    train, validation = _load_hub()
    return {"train": list(train), "validation": list(validation)}


def _sst2_files(root: Path) -> tuple[Path, Path]:
    """Accept the data root (``<dir>/sst2/*.tsv``) or the sst2 folder itself."""
    if not root.is_dir():
        raise UserError(f"data directory {root} does not exist; {SETUP_HINT}")
    folder = root / "sst2" if (root / "sst2").is_dir() else root
    for name in ("train.tsv", "dev.tsv"):
        if not (folder / name).is_file():
            raise UserError(
                f"SST-2 file {folder / name} not found; {SETUP_HINT} to a folder holding "
                "sst2/train.tsv and sst2/dev.tsv"
            )
    return folder / "train.tsv", folder / "dev.tsv"


def _stamped(path: str | Path, what: str) -> tuple[str, int]:
    """(absolute path, modification time): the key of the parsed-file caches."""
    path = Path(path).resolve()
    try:
        return str(path), path.stat().st_mtime_ns
    except OSError:
        raise UserError(f"{what} file {path} not found; {SETUP_HINT}") from None


def read_tsv(path: str | Path) -> tuple[dict, ...]:
    """Parse a GLUE SST-2 TSV (header ``sentence<TAB>label``); cached per file and mtime."""
    return _read_tsv_cached(*_stamped(path, "SST-2"))


@functools.lru_cache(maxsize=8)
def _read_tsv_cached(path: str, _mtime_ns: int) -> tuple[dict, ...]:
    rows = []
    text = read_text(path, "SST-2 file")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["sentence", "label"]:
        shown = repr(header)[:60]
        raise UserError(f"{path} line 1: expected the header 'sentence<TAB>label', got {shown}")
    for row in reader:
        line = reader.line_num
        if not row:
            continue  # a blank line (e.g. at the end of the file)
        if len(row) != 2:
            raise UserError(
                f"{path} line {line}: expected 2 tab-separated fields (sentence, label), "
                f"got {len(row)}"
            )
        sentence, label = row
        if label.strip() not in ("0", "1"):
            raise UserError(f"{path} line {line}: label must be 0 or 1, got {label[:20]!r}")
        if not sentence.strip():
            raise UserError(f"{path} line {line}: the sentence is empty")
        rows.append({"sentence": sentence, "label": int(label)})
    return tuple(rows)


@functools.lru_cache(maxsize=1)
def _load_hub() -> tuple[tuple[dict, ...], tuple[dict, ...]]:
    try:
        import datasets

        loaded = datasets.load_dataset(*HUB_DATASET)
        splits = []
        for split in ("train", "validation"):
            part = loaded[split]
            splits.append(
                tuple(
                    {"sentence": s, "label": int(y)}
                    for s, y in zip(part["sentence"], part["label"], strict=True)
                )
            )
    except Exception as err:  # noqa: BLE001 - any hub failure means the same thing to the user
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(
            f"SST-2: no local data (data.dir is unset) and the HF hub is not reachable ({first}); "
            f"{SETUP_HINT}"
        ) from None
    return splits[0], splits[1]


# ---------------------------------------------------------------- synthetic data

_POSITIVE = ("good", "great", "wonderful", "excellent", "delightful", "charming", "brilliant")
_POSITIVE += ("superb", "moving", "fun", "enjoyable")
_NEGATIVE = ("bad", "terrible", "awful", "boring", "dull", "tedious", "weak", "horrible")
_NEGATIVE += ("poor", "bland", "clumsy")
_SUBJECTS = ("the film", "this movie", "the story", "the plot", "the acting", "the cast", "it")
_VERBS = ("is", "was")
_ADVERBS = ("", "really ", "quite ", "truly ", "very ", "so ", "just ")


def synthetic_sst2(n_train: int, n_validation: int, seed: int) -> dict[str, list[dict]]:
    """A balanced, separable SST-2-format set: the sentiment word decides the label."""
    rng = np.random.default_rng([seed, 0x55_72])
    return {
        "train": _synthetic(n_train, rng),
        "validation": _synthetic(n_validation, rng),
    }


def _synthetic(n: int, rng: np.random.Generator) -> list[dict]:
    labels = np.arange(n) % 2
    rng.shuffle(labels)
    rows = []
    for label in labels:
        words = _POSITIVE if label else _NEGATIVE
        subject = _SUBJECTS[rng.integers(len(_SUBJECTS))]
        verb = _VERBS[rng.integers(len(_VERBS))]
        adverb = _ADVERBS[rng.integers(len(_ADVERBS))]
        first = words[rng.integers(len(words))]
        if rng.random() < 0.5:
            text = f"{subject} {verb} {adverb}{first} "
        else:
            second = words[rng.integers(len(words))]
            text = f"{subject} {verb} {adverb}{first} and {second} . "
        rows.append({"sentence": text, "label": int(label)})
    return rows


# ---------------------------------------------------------------- splits


@dataclass
class Splits:
    """The private pool, the public dev set (disjoint from the pool), and the test set."""

    pool: list[dict]
    dev: list[dict]
    test: list[dict]
    pool_indices: np.ndarray = field(repr=False)  # rows of the train split
    dev_indices: np.ndarray = field(repr=False)  # rows of the train split (or the dev file)
    test_indices: np.ndarray = field(repr=False)  # rows of the validation split (or file)
    test_requested: int = 0
    test_is_whole_split: bool = False  # validation was no larger than num_test (SST-2: 872)
    # "official": pool/dev from the train split, test from validation; "dev-derived": all
    # three from one split, divided by article (SQuAD offline, no train file); "own data":
    # data.train (and data.dev / data.test) read by ``own_splits``
    provenance: str = "official"
    # Where the guarantee stops: dev and test rows carved from the pool's own source are
    # data of the same holder, outside the pool, so outside the guarantee.
    dev_from_pool_source: bool = True
    test_from_pool_source: bool = False
    # data.group_field: the pool positions of each privacy unit's rows (None: one row each)
    units: list[np.ndarray] | None = field(default=None, repr=False)
    unit_field: str | None = None

    def summary(self) -> dict:
        return {
            "pool": len(self.pool),
            "dev": len(self.dev),
            "test": len(self.test),
            "test_requested": self.test_requested,
            "test_is_whole_split": self.test_is_whole_split,
            "provenance": self.provenance,
        }

    def coverage(self) -> dict[str, Any]:
        """What the guarantee covers, in public terms: the unit, the number of units in the
        pool, and whether dev and test were carved from the pool's source."""
        units = len(self.pool) if self.units is None else len(self.units)
        return {
            "covers": "pool",
            "unit": "row" if self.unit_field is None else "group",
            "unit_field": self.unit_field,
            "level": "example-level" if self.unit_field is None else "user-level",
            "pool_units": units,
            "dev_from_pool_source": self.dev_from_pool_source,
            "test_from_pool_source": self.test_from_pool_source,
        }


def sample_splits(data: dict[str, list[dict]], cfg: DataConfig) -> Splits:
    """Pool and dev from train without overlap, test from validation; seeded by data.seed."""
    train, validation = data["train"], data["validation"]
    need = cfg.num_train + cfg.num_dev
    if len(train) < need:
        raise UserError(
            f"the SST-2 train split has {len(train)} rows, fewer than data.num_train + "
            f"data.num_dev = {need}; lower them"
        )
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(train))
    pool_idx = np.sort(perm[: cfg.num_train])
    dev_idx = np.sort(perm[cfg.num_train : need])
    whole = len(validation) <= cfg.num_test
    if whole:
        test_idx = np.arange(len(validation))
    else:
        test_idx = np.sort(rng.choice(len(validation), cfg.num_test, replace=False))
    return Splits(
        pool=[train[i] for i in pool_idx],
        dev=[train[i] for i in dev_idx],
        test=[validation[i] for i in test_idx],
        pool_indices=pool_idx,
        dev_indices=dev_idx,
        test_indices=test_idx,
        test_requested=cfg.num_test,
        test_is_whole_split=whole,
    )


def load_splits(task: str | TaskConfig, cfg: DataConfig) -> Splits:
    """The pool / dev / test examples of a task: the task type declares how its rows are
    read (``paczero.tasks.read_splits``); ``task`` is a task config or a preset's name."""
    from paczero.tasks import read_splits  # the task registry imports this module

    return read_splits(task if isinstance(task, TaskConfig) else TaskConfig(name=task), cfg)


# ---------------------------------------------------------------- SQuAD v1.1
#
# Examples are dicts {"id", "title", "context", "question", "answers": [str, ...]}: the
# answers in file order (duplicates kept, as the HF data set and MeZO keep them); the first
# is the training target. ``title`` identifies the article (unique per article in v1.1).

SQUAD_HUB = "rajpurkar/squad"
SQUAD_FILES = ("train-v1.1.json", "dev-v1.1.json")
ARTICLE_SHARES = (2, 1, 2)  # pool : dev : test questions in a dev-derived split


def load_squad(cfg: DataConfig) -> dict[str, list[dict]]:
    """{"validation": [...]} and, when available (hub, or a local train file), {"train": [...]}."""
    if cfg.source == "synthetic":
        raise UserError("data.source 'synthetic' is for sst2 only; squad needs real data")
    if cfg.dir:
        folder = _squad_folder(Path(cfg.dir).expanduser())
        out = {"validation": list(read_squad_json(folder / SQUAD_FILES[1]))}
        if (folder / SQUAD_FILES[0]).is_file():
            out["train"] = list(read_squad_json(folder / SQUAD_FILES[0]))
        return out
    train, validation = _load_squad_hub()
    return {"train": list(train), "validation": list(validation)}


def _squad_folder(root: Path) -> Path:
    """Accept the data root (``<dir>/squad/dev-v1.1.json``) or the squad folder itself."""
    if not root.is_dir():
        raise UserError(f"data directory {root} does not exist; {SETUP_HINT}")
    folder = root / "squad" if (root / "squad").is_dir() else root
    if not (folder / SQUAD_FILES[1]).is_file():
        raise UserError(
            f"SQuAD file {folder / SQUAD_FILES[1]} not found; {SETUP_HINT} to a folder holding "
            "squad/dev-v1.1.json (and optionally squad/train-v1.1.json)"
        )
    return folder


def read_squad_json(path: str | Path) -> tuple[dict, ...]:
    """Flatten an official SQuAD v1.1 JSON file; cached per file and mtime."""
    return _read_squad_cached(*_stamped(path, "SQuAD"))


@functools.lru_cache(maxsize=4)
def _read_squad_cached(path: str, _mtime_ns: int) -> tuple[dict, ...]:
    """Every question with its article, context and answers; an entry that cannot train
    or score (no answer, a context or answer that is not text) is refused by position."""
    text = read_text(path, "SQuAD file")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(
            f"{path} line {err.lineno}, column {err.colno}: not valid JSON ({err.msg})"
        ) from None
    articles = document.get("data") if isinstance(document, dict) else None
    if not isinstance(articles, list):
        raise UserError(f"{path}: not an official SQuAD v1.1 JSON file (no 'data' list)")
    rows = []
    for a, article in enumerate(articles):
        where = f"{path}: data[{a}]"
        title = _field(article, "title", str, where)
        for p, paragraph in enumerate(_field(article, "paragraphs", list, where)):
            at = f"{where}.paragraphs[{p}]"
            context = _text(_field(paragraph, "context", str, at), f"{at}.context")
            for q, qa in enumerate(_field(paragraph, "qas", list, at)):
                here = f"{at}.qas[{q}]"
                qid = _field(qa, "id", str, here)
                question = _text(_field(qa, "question", str, here), f"{here}.question")
                answers = _field(qa, "answers", list, here)
                if not answers:
                    raise UserError(
                        f"{here} (id {qid!r}) has no answers: SQuAD v1.1 questions have at "
                        "least one (v2.0 files with unanswerable questions are not supported)"
                    )
                texts = [
                    _text(_field(x, "text", str, f"{here}.answers[{i}]"), f"{here}.answers[{i}]")
                    for i, x in enumerate(answers)
                ]
                rows.append(
                    {
                        "id": qid,
                        "title": title,
                        "context": context,
                        "question": question,
                        "answers": texts,
                    }
                )
    return tuple(rows)


def _field(node: Any, key: str, kind: type, where: str) -> Any:
    """``node[key]`` of the expected JSON type, or one line naming the place."""
    names = {str: "a string", list: "a list"}
    if not isinstance(node, dict):
        raise UserError(f"{where}: expected an object, got {type(node).__name__}")
    if key not in node:
        raise UserError(f"{where}: '{key}' is missing (not an official SQuAD v1.1 file)")
    value = node[key]
    if not isinstance(value, kind):
        shown = "null" if value is None else type(value).__name__
        raise UserError(f"{where}.{key} must be {names[kind]}, got {shown}")
    return value


def _text(value: str, where: str) -> str:
    if not value.strip():
        raise UserError(f"{where} is empty")
    return value


@functools.lru_cache(maxsize=1)
def _load_squad_hub() -> tuple[tuple[dict, ...], tuple[dict, ...]]:
    try:
        import datasets

        loaded = datasets.load_dataset(SQUAD_HUB)
        splits = []
        for split in ("train", "validation"):
            part = loaded[split]
            columns = (part[c] for c in ("id", "title", "context", "question", "answers"))
            splits.append(
                tuple(
                    {"id": i, "title": t, "context": c, "question": q, "answers": list(a["text"])}
                    for i, t, c, q, a in zip(*columns, strict=True)
                )
            )
    except Exception as err:  # noqa: BLE001 - any hub failure means the same thing to the user
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(
            f"SQuAD: no local data (data.dir is unset) and the HF hub is not reachable ({first}); "
            f"{SETUP_HINT}"
        ) from None
    return splits[0], splits[1]


def squad_splits(data: dict[str, list[dict]], cfg: DataConfig) -> Splits:
    """Official (train -> pool/dev, validation -> test) or dev-derived (by article)."""
    if "train" not in data:
        return split_by_article(data["validation"], cfg)
    need = cfg.num_train + cfg.num_dev
    if len(data["train"]) < need:
        raise UserError(
            f"the SQuAD train split has {len(data['train'])} questions, fewer than "
            f"data.num_train + data.num_dev = {need}; lower them"
        )
    return sample_splits(data, cfg)  # provenance "official"


def split_by_article(rows: list[dict], cfg: DataConfig) -> Splits:
    """Pool, dev and test from disjoint articles of one split, seeded by data.seed.

    Shuffled articles are dealt, one at a time, to the part furthest behind its share of
    the questions (2 : 1 : 2, MeZO's 1000 / 500 / 1000); then each part samples its
    questions from its own stream. The article partition depends on the seed only, so
    changing ``num_test`` at evaluation can never move a pool article into the test set,
    and the pool sample does not depend on ``num_dev`` or ``num_test``.
    """
    by_article: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_article.setdefault(row["title"], []).append(i)
    if len(by_article) < 3:
        raise UserError(
            f"a dev-derived SQuAD split needs at least 3 articles; the data has {len(by_article)}"
        )
    titles = list(by_article)
    share = np.array(ARTICLE_SHARES, dtype=np.float64)
    parts: list[list[int]] = [[], [], []]
    have = np.zeros(3)
    for a in np.random.default_rng([cfg.seed, 0x5_0AD]).permutation(len(titles)):
        k = int(np.argmin(have / share))
        parts[k].extend(by_article[titles[a]])
        have[k] += len(by_article[titles[a]])
    wanted = (cfg.num_train, cfg.num_dev, cfg.num_test)
    names = ("data.num_train", "data.num_dev")
    for k in (0, 1):
        if have[k] < wanted[k]:
            raise UserError(
                f"the article-level split of {len(rows)} SQuAD questions ({len(titles)} articles) "
                f"has {int(have[k])} questions for {names[k]} (asked {wanted[k]}); lower it, "
                "or add squad/train-v1.1.json"
            )
    chosen = []
    for k in (0, 1, 2):
        pool = np.sort(np.asarray(parts[k], dtype=np.int64))
        rng = np.random.default_rng([cfg.seed, 0x5_0AD, k + 1])
        chosen.append(np.sort(rng.choice(pool, min(wanted[k], len(pool)), replace=False)))
    return Splits(
        pool=[rows[i] for i in chosen[0]],
        dev=[rows[i] for i in chosen[1]],
        test=[rows[i] for i in chosen[2]],
        pool_indices=chosen[0],
        dev_indices=chosen[1],
        test_indices=chosen[2],
        test_requested=cfg.num_test,
        test_is_whole_split=len(chosen[2]) < cfg.num_test,
        provenance="dev-derived",
        test_from_pool_source=True,
    )


# ---------------------------------------------------------------- your own data
#
# data.train / data.dev / data.test: a file or folder of CSV, TSV, JSON, JSON Lines or
# Parquet, or a hub data set id (with data.hub_config and data.splits), read by `datasets`.

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
    wanted = {"dev": data.num_dev, "test": data.num_test}
    from_train = carved if public is None else []
    need = data.num_train + sum(wanted[r] for r in from_train)
    if n_units < need:
        keys = " + ".join(["data.num_train", *(f"data.num_{r}" for r in from_train)])
        have = (
            f"{n_units} rows"
            if units is None
            else f"{n_units} units ({len(rows)} rows; a unit is the rows that share "
            f"data.group_field '{data.group_field}')"
        )
        raise UserError(
            f"{train.name} has {have}, fewer than {keys} = {need}; lower them"
            + ("" if public is not None else ", or give separate data.dev / data.test files")
        )
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
    pool_units = None
    if units is not None:
        sizes = [len(units[u]) for u in taken["pool"]]
        ends = np.cumsum(sizes)
        pool_units = [np.arange(e - n, e, dtype=np.int64) for e, n in zip(ends, sizes, strict=True)]
    return Splits(
        pool=[rows[i] for i in pool_idx],
        dev=parts["dev"][0],
        test=parts["test"][0],
        pool_indices=pool_idx,
        dev_indices=parts["dev"][1],
        test_indices=parts["test"][1],
        test_requested=data.num_test,
        provenance="own data",
        dev_from_pool_source="dev" in from_train,
        test_from_pool_source="test" in from_train,
        units=pool_units,
        unit_field=data.group_field,
    )


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
        raise UserError(
            f"data.group_field '{name}': every row of {table.name} has the same value "
            f"({next(iter(groups))!r}), so the pool would be one privacy unit; choose a column "
            "that names the user (or patient) of each row, or drop data.group_field"
        )
    return [np.asarray(rows, dtype=np.int64) for rows in groups.values()]


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
        files = sorted(
            p for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FORMATS
        )  # fmt: skip
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
            raise UserError(f"cannot read {key} {name}: {_cause(err)}") from None
        return Table(loaded.to_list(), list(loaded.column_names), name)


def _check_text_table(file: Path, kind: str, text: str) -> None:
    """What the parsers would misread or name badly: an empty file, a CSV header that names
    a column twice (one column would replace the other), a header with no rows, a row with
    more or fewer cells than the header (pandas would take extra cells as the index)."""
    if not text.strip():
        raise UserError(f"{file} is empty: no rows")
    if kind == "json":
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
