"""SST-2: a preset of the classification task type (MeZO's templates and label words).

The prompt is the sentence (stripped) between the template's prefix and suffix; the label
words follow it: ``mezo``: ``<sentence> It was`` -> `` terrible`` / `` great``; ``review``:
``Review: <sentence>\\nSentiment:`` -> `` negative`` / `` positive``. Both label words are
single tokens for OPT, Llama and SmolLM2, so one sequence per example is scored. Without
``data.train`` the rows come from GLUE's files (``data.dir``), the hub, or the synthetic set
(``paczero.data``); the metric is accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

from paczero.config import DataConfig, TaskConfig
from paczero.data import Splits, load_sst2, sample_splits
from paczero.errors import UserError
from paczero.tasks.base import Preset, Prompt, escape, with_metrics
from paczero.tasks.classification import (
    Batch,
    ClassificationSpec,
    ClassificationTask,
    EncodedSet,
)

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
}


def spec(cfg: TaskConfig) -> ClassificationSpec:
    if cfg.template not in TEMPLATES:
        raise UserError(
            f"unknown task.template '{cfg.template}' for sst2: choose one of {', '.join(TEMPLATES)}"
        )
    return with_metrics(TEMPLATES[cfg.template].spec(), cfg)


def read(data: DataConfig) -> Splits:
    """GLUE's train split gives the pool and dev, its validation split the test set."""
    return sample_splits(load_sst2(data), data)


PRESET = Preset(
    name="sst2",
    type=ClassificationTask,
    templates=tuple(TEMPLATES),
    spec=spec,
    read=read,
    max_length=256,
    min_prompt_tokens=64,  # SST-2 sentences run to ~60 tokens
    title="SST-2",
)

SST2Task = ClassificationTask  # the task SST-2 builds (the name of the time before presets)
