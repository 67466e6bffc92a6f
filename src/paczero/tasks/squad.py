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

from paczero.config import DataConfig, TaskConfig
from paczero.data import Splits, load_squad, squad_splits
from paczero.errors import UserError
from paczero.tasks.base import Preset, Prompt, with_metrics
from paczero.tasks.generation import (
    GenerationBatch,
    GenerationEncoded,
    GenerationSpec,
    GenerationTask,
)

__all__ = ["PRESET", "TEMPLATES", "SquadBatch", "SquadEncoded", "SquadTask"]

TEMPLATES = ("mezo",)
PROMPT = Prompt(
    "Title: {title}\nContext: {context}\nQuestion: {question}\nAnswer:",
    verbatim=frozenset({"title", "context"}),
)
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
    return with_metrics(SPEC, cfg)


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
)

# The names of the time before presets
SquadTask = GenerationTask
SquadEncoded = GenerationEncoded
SquadBatch = GenerationBatch
