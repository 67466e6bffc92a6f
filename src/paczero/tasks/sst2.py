"""SST-2: a preset of the classification task type (MeZO's templates and label words).

The prompt is the sentence (stripped) between the template's prefix and suffix; the label
words follow it: ``mezo``: ``<sentence> It was`` -> `` terrible`` / `` great``; ``review``:
``Review: <sentence>\\nSentiment:`` -> `` negative`` / `` positive``. Both label words are
single tokens for OPT, Llama and SmolLM2, so one sequence per example is scored. Without
``data.train`` the rows come from GLUE's files (``data.dir``), the hub, or the synthetic set
(read here); the metric is accuracy.

SST-2 examples are plain dicts ``{"sentence": str, "label": int}`` (0 negative, 1
positive), kept exactly as in GLUE (sentences end with a space; the task strips them).
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from paczero.errors import UserError
from paczero.tasks.base import Preset, Prompt, escape, with_metrics
from paczero.tasks.classification import (
    Batch,
    ClassificationSpec,
    ClassificationTask,
    EncodedSet,
)
from paczero.tasks.splits import SETUP_HINT, Splits, hub_unreachable, sample_splits, stamped
from paczero.textfiles import read_text

if TYPE_CHECKING:
    from paczero.tasks.options import DataConfig, TaskConfig

__all__ = ["PRESET", "TEMPLATES", "Batch", "EncodedSet", "SST2Task", "Template"]


@dataclass(frozen=True)
class Template:
    name: str
    prefix: str  # text before the sentence
    suffix: str  # text after the sentence; the option follows it directly
    options: tuple[str, ...]  # label word for label 0, 1, ...

    def render(self, sentence: str) -> str:
        return f"{self.prefix}{sentence.strip()}{self.suffix}"

    def describe(self) -> str:
        opts = " | ".join(repr(o) for o in self.options)
        return f"{self.render('<sentence>')!r} -> {opts}"

    def spec(self) -> ClassificationSpec:
        return ClassificationSpec(
            name=f"sst2/{self.name}",
            prompt=Prompt(f"{escape(self.prefix)}{{sentence}}{escape(self.suffix)}"),
            label_field="label",
            labels=tuple(str(k) for k in range(len(self.options))),
            words=self.options,
            metrics=("accuracy",),
            where=f"task.template '{self.name}'",
        )


TEMPLATES = {
    "mezo": Template("mezo", "", " It was", (" terrible", " great")),
    "review": Template("review", "Review: ", "\nSentiment:", (" negative", " positive")),
    # two more public wordings, written without looking at any SST-2 row: selection
    # candidates (docs/own-data.md, task.candidates)
    "question": Template(
        "question",
        "",
        "\nQuestion: Is this movie review positive or negative?\nAnswer:",
        (" negative", " positive"),
    ),
    "opinion": Template("opinion", "Movie review: ", "\nThe movie was", (" bad", " good")),
}


def spec(cfg: TaskConfig) -> ClassificationSpec:
    if cfg.template not in TEMPLATES:  # None: task_spec gives the first candidate's
        raise UserError(
            f"unknown task.template '{cfg.template}' for sst2: choose one of {', '.join(TEMPLATES)}"
        )
    return with_metrics(TEMPLATES[cfg.template].spec(), cfg)


def read(data: DataConfig) -> Splits:
    """GLUE's train split gives the pool and dev, its validation split the test set."""
    return sample_splits(load_sst2(data), data)


# What a run that names no task.template selects among (docs/selection.md): MeZO's
# template first (where the selection starts), then the other public wordings.
CANDIDATES = tuple({"name": name, "template": name} for name in TEMPLATES)

PRESET = Preset(
    name="sst2",
    type=ClassificationTask,
    templates=tuple(TEMPLATES),
    spec=spec,
    read=read,
    max_length=256,
    min_prompt_tokens=64,  # SST-2 sentences run to ~60 tokens
    title="SST-2",
    candidates=CANDIDATES,
)

SST2Task = ClassificationTask  # the task SST-2 builds (the name of the time before presets)


# ---------------------------------------------------------------- GLUE's files

HUB_DATASET = ("nyu-mll/glue", "sst2")


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


def read_tsv(path: str | Path) -> tuple[dict, ...]:
    """Parse a GLUE SST-2 TSV (header ``sentence<TAB>label``); cached per file and mtime."""
    return _read_tsv_cached(*stamped(path, "SST-2"))


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
        raise hub_unreachable("SST-2", err) from None
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
