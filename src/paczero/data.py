"""SST-2 and SQuAD from local files or the HF hub, and the seeded pool / dev / test split.

Examples are plain dicts ``{"sentence": str, "label": int}`` (0 negative, 1 positive),
kept exactly as in GLUE (sentences end with a space; the task strips them). Sampling is
public randomness: the pool, dev and test rows are a pure function of ``data.seed``.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paczero.config import DataConfig
from paczero.errors import UserError
from paczero.textfiles import read_text

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
    dev_indices: np.ndarray = field(repr=False)  # rows of the train split
    test_indices: np.ndarray = field(repr=False)  # rows of the validation split
    test_requested: int = 0
    test_is_whole_split: bool = False  # validation was no larger than num_test (SST-2: 872)
    # "official": pool/dev from the train split, test from validation; "dev-derived": all
    # three from one split, divided by article (SQuAD offline, no train file)
    provenance: str = "official"

    def summary(self) -> dict:
        return {
            "pool": len(self.pool),
            "dev": len(self.dev),
            "test": len(self.test),
            "test_requested": self.test_requested,
            "test_is_whole_split": self.test_is_whole_split,
            "provenance": self.provenance,
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


def load_splits(task_name: str, cfg: DataConfig) -> Splits:
    """The pool / dev / test examples of a task (one entry point for every task)."""
    if task_name == "sst2":
        return sample_splits(load_sst2(cfg), cfg)
    if task_name == "squad":
        return squad_splits(load_squad(cfg), cfg)
    raise UserError(f"unknown task '{task_name}'; available: sst2, squad")


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
    )
