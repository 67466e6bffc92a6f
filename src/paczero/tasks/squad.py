"""SQuAD v1.1: a preset of the generation task type, with MeZO's prompt and PACZero's metric.

Prompt (MeZO ``SQuADv2Template``): ``Title: <title>\\nContext: <context>\\nQuestion:
<question>\\nAnswer:``, title and context verbatim, the question stripped; the training
continuation is `` <first gold answer>\\n`` and generation stops at a newline. A prompt
that is too long loses the start of its *context* (never the title, question or answer
cue). Objectives ``ce`` and ``neg-f1``; metrics F1 and EM with the official v1.1
normalisation (docs/squad.md). Without ``data.train`` the rows come from the official JSON
files (``data.dir``, split by article when only the dev file is there) or the hub.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paczero.errors import UserError
from paczero.tasks.base import Preset, Prompt, with_metrics
from paczero.tasks.generation import (
    GenerationBatch,
    GenerationEncoded,
    GenerationSpec,
    GenerationTask,
)
from paczero.tasks.splits import SETUP_HINT, Splits, hub_unreachable, sample_splits, stamped
from paczero.textfiles import read_text

if TYPE_CHECKING:
    from paczero.tasks.options import DataConfig, TaskConfig

__all__ = ["PRESET", "TEMPLATES", "SquadBatch", "SquadEncoded", "SquadTask"]

PROMPT = Prompt(
    "Title: {title}\nContext: {context}\nQuestion: {question}\nAnswer:",
    verbatim=frozenset({"title", "context"}),
)
# a second public wording (no title), a selection candidate (docs/selection.md)
QA_PROMPT = Prompt(
    "Context: {context}\nQ: {question}\nA:", verbatim=frozenset({"title", "context"})
)
PROMPTS = {"mezo": PROMPT, "qa": QA_PROMPT}
TEMPLATES = tuple(PROMPTS)
SPEC = GenerationSpec(
    name="squad/mezo",
    title="SQuAD",
    prompt=PROMPT,
    completion_field=None,
    answers_field="answers",
    delimiter=" ",
    stop=("\n",),
    truncate_field="context",
    metrics=("f1", "exact_match"),
)


def render_prompt(example: dict) -> str:
    """MeZO's SQuAD prompt (the question is stripped, title and context kept verbatim)."""
    return PROMPT.render(example)


def render_continuation(example: dict) -> str:
    """The training target: the first gold answer and the newline that ends it."""
    return SPEC.continuation(example)


def spec(cfg: TaskConfig) -> GenerationSpec:
    if cfg.template not in TEMPLATES:
        raise UserError(
            f"unknown task.template '{cfg.template}' for squad: choose one of "
            f"{', '.join(TEMPLATES)}"
        )
    if cfg.template == "mezo":
        return with_metrics(SPEC, cfg)
    return with_metrics(
        replace(SPEC, name=f"squad/{cfg.template}", prompt=PROMPTS[cfg.template]), cfg
    )


def read(data: DataConfig) -> Splits:
    """Official (train -> pool/dev, validation -> test) or dev-derived (by article)."""
    return squad_splits(load_squad(data), data)


PRESET = Preset(
    name="squad",
    type=GenerationTask,
    templates=TEMPLATES,
    spec=spec,
    read=read,
    max_length=2048,  # MeZO's OPT context (long contexts)
    min_prompt_tokens=128,  # a prompt cut shorter keeps little more than title and question
    title="SQuAD",
    # MeZO's prompt, the plain one, and MeZO's inside the chat template (instruct models)
    candidates=(
        {"name": "mezo", "template": "mezo"},
        {"name": "qa", "template": "qa"},
        {"name": "mezo-chat", "template": "mezo", "chat_template": True},
    ),
)

# The names of the time before presets
SquadTask = GenerationTask
SquadEncoded = GenerationEncoded
SquadBatch = GenerationBatch


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
    return _read_squad_cached(*stamped(path, "SQuAD"))


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
        raise hub_unreachable("SQuAD", err) from None
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
