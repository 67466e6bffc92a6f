"""The task registry: task types and presets by name, and the checks of the task keys.

Adding a task type is one module plus one line in ``TASK_TYPES``; a preset, one module
plus one line in ``PRESETS`` (docs/algorithms.md 10). The ``task`` section is built first
(``paczero.tasks.options``, which knows no type); ``checked`` then fills its defaults from
its type or preset and checks it (ValueError: one line naming the key). ``RunConfig`` calls
it while it validates a config.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from paczero.errors import UserError
from paczero.tasks import squad, sst2
from paczero.tasks.base import Preset, Task, prompt_fields
from paczero.tasks.classification import ClassificationTask
from paczero.tasks.generation import GenerationTask
from paczero.tasks.options import DEFAULT_TEMPLATE, Candidate, DataConfig, TaskConfig
from paczero.tasks.own_data import RowSchema, own_splits
from paczero.tasks.splits import Splits

TASK_TYPES = {"classification": ClassificationTask, "generation": GenerationTask}
PRESETS = {"sst2": sst2.PRESET, "squad": squad.PRESET}

TASKS = {name: preset.type for name, preset in PRESETS.items()}  # name -> task class
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# The keys of a task of one's own (a preset has its own prompt and fields).
OWN_KEYS = ("prompt", "label_field", "label_words", "completion_field", "answers_field")
OWN_KEYS += ("truncate_field",)
OWN_DEFAULTS = {"target_delimiter": " ", "stop": ["\n"]}


def preset_of(cfg: TaskConfig) -> Preset | None:
    return PRESETS.get(cfg.name) if cfg.type is None else None


def type_of(cfg: TaskConfig) -> type:
    preset = preset_of(cfg)
    return preset.type if preset is not None else TASK_TYPES[cfg.type]


# ---------------------------------------------------------------- config checks
#
# Called by paczero.config while it validates (ValueError: one line naming the key).


def checked(cfg: TaskConfig) -> TaskConfig:
    """The task section with the default ``max_length`` of its preset or type (where not
    given), checked against them."""
    check_name_and_type(cfg.name, cfg.type)
    if "max_length" not in cfg.model_fields_set:
        cfg = cfg.model_copy(update={"max_length": default_max_length(cfg.name, cfg.type)})
    check_task_config(cfg)
    _check_candidates(cfg, preset_of(cfg))
    options = choices(cfg)
    for _, task in options:
        check_task_config(task)
    check_same_rows(options)
    return cfg


# ---------------------------------------------------------------- candidates


def choices(cfg: TaskConfig) -> list[tuple[str, TaskConfig]]:
    """The tasks the selection stage chooses among, in listed order (the first is where
    it starts); empty when the prompt is pinned (a preset's task.template, or a task of
    one's own without task.candidates)."""
    preset = preset_of(cfg)
    if preset is not None and cfg.template is not None:
        return []
    listed = cfg.candidates
    if listed is None:
        listed = [Candidate(**c) for c in preset.candidates] if preset is not None else []
    return [(c.name, chosen(cfg, c)) for c in listed]


def chosen(cfg: TaskConfig, candidate: Candidate) -> TaskConfig:
    """The task with one candidate's keys set: what training runs once it is chosen."""
    changes: dict[str, Any] = {**candidate.changes(), "candidates": None}
    if "chat_template" in changes and cfg.type and "target_delimiter" not in cfg.model_fields_set:
        # a chat turn's answer starts its own line (as TaskConfig._chat_turn_needs_no_delimiter)
        changes["target_delimiter"] = "" if changes["chat_template"] else " "
    preset = preset_of(cfg)
    if preset is not None and "template" not in changes:
        changes["template"] = preset.templates[0]
    return cfg.model_copy(update=changes)


def pinned(cfg: TaskConfig) -> TaskConfig:
    """The task before any selection: its first candidate (a zero-shot evaluation of a
    base model, a mechanism that selects nothing), or itself when pinned."""
    options = choices(cfg)
    return options[0][1] if options else cfg


def _check_candidates(cfg: TaskConfig, preset: Preset | None) -> None:
    """task.candidates: named once each, a preset's templates for a preset (which then
    names no task.template), another prompt or label words for a task of one's own."""
    listed = cfg.candidates
    if listed is None:
        return
    if not listed:
        raise ValueError("task.candidates is empty: list two or more, or drop the key")
    names = [c.name for c in listed]
    if len(set(names)) < len(names):
        raise ValueError(f"task.candidates names a candidate twice ({', '.join(names)})")
    if preset is not None and cfg.template is not None:
        raise ValueError(
            f"task.template ('{cfg.template}') pins the prompt, task.candidates selects one: "
            "drop one of them"
        )
    for c in listed:
        where = f"task.candidates '{c.name}'"
        if preset is not None:
            if c.prompt is not None or c.label_words is not None:
                raise ValueError(
                    f"{where}: the preset '{cfg.name}' has its own prompts; name one of its "
                    f"templates ({', '.join(preset.templates)})"
                )
            if c.template is not None and c.template not in preset.templates:
                raise ValueError(
                    f"{where}: '{c.template}' is not a template of '{cfg.name}' "
                    f"({', '.join(preset.templates)})"
                )
        elif c.template is not None:
            raise ValueError(
                f"{where}: task.template names a preset's prompt; a task of your own lists "
                "another prompt (prompt) or label words (label_words)"
            )


def check_same_rows(options: list[tuple[str, TaskConfig]]) -> None:
    """Candidates of one classification task share its labels (they change the words)."""
    labels = {name: tuple(getattr(task_spec(task), "labels", ())) for name, task in options}
    if len(set(labels.values())) > 1:
        first = next(iter(labels))
        other = next(n for n in labels if labels[n] != labels[first])
        raise ValueError(
            f"task.candidates '{other}' labels the rows {', '.join(labels[other])}, "
            f"'{first}' {', '.join(labels[first])}: candidates change the words, not the labels"
        )


def check_name_and_type(name: str, kind: str | None) -> None:
    if kind is None:
        if name not in PRESETS:
            raise ValueError(
                f"task.name '{name}' is not a preset ({', '.join(PRESETS)}); for a task of your "
                f"own set task.type ({' or '.join(TASK_TYPES)}) with task.prompt, or task.file"
            )
        return
    if kind not in TASK_TYPES:
        raise ValueError(f"unknown task.type '{kind}': choose one of {', '.join(TASK_TYPES)}")
    if name in PRESETS:
        raise ValueError(
            f"task.name '{name}' is a preset: give your task another name, or drop task.type "
            "to run the preset"
        )
    if not NAME.fullmatch(name):
        raise ValueError(
            f"task.name '{name}' names run directories: use letters, digits, '.', '_', '-'"
        )


def default_max_length(name: str, kind: str | None) -> int:
    """The task.max_length of a preset (``kind`` None) or of a task type (a known name)."""
    return PRESETS[name].max_length if kind is None else TASK_TYPES[kind].default_max_length


def check_task_config(cfg: TaskConfig) -> None:
    """The task's keys make sense for its type (or preset)."""
    cls, preset = type_of(cfg), preset_of(cfg)
    if cfg.objective not in cls.OBJECTIVES:
        raise ValueError(
            f"task.objective '{cfg.objective}' is for generation tasks (squad, or task.type "
            f"generation); a {cls.kind} task ('{cfg.name}') has {', '.join(cls.OBJECTIVES)}"
        )
    for metric in cfg.metrics or ():
        if metric not in cls.METRICS:
            raise ValueError(
                f"task.metrics: '{metric}' is not a {cls.kind} metric ({', '.join(cls.METRICS)})"
            )
    if cfg.metrics is not None and (not cfg.metrics or cfg.metrics[0] not in cls.SELECTABLE):
        raise ValueError(
            "the first of task.metrics picks the dev-best model and must improve upwards: "
            f"one of {', '.join(cls.SELECTABLE)}"
        )
    if cls is GenerationTask and cfg.max_length <= cfg.max_new_tokens:
        raise ValueError(
            f"task.max_length ({cfg.max_length}) must exceed task.max_new_tokens "
            f"({cfg.max_new_tokens}): the prompt and the answer share it"
        )
    if preset is not None:
        given = [k for k in OWN_KEYS if getattr(cfg, k) is not None]
        given += [k for k, v in OWN_DEFAULTS.items() if getattr(cfg, k) != v]
        if given:
            raise ValueError(
                f"task.{given[0]} is a key of a task of your own (task.type); the preset "
                f"'{cfg.name}' has its own prompt (task.template: "
                f"{', '.join(preset.templates)})"
            )
        return
    if cfg.template not in (None, DEFAULT_TEMPLATE):  # mezo: what runs before selection wrote
        raise ValueError(
            f"task.template ('{cfg.template}') names a preset's prompt; a task of your own "
            "has task.prompt"
        )
    for key in cls.FOREIGN:
        if getattr(cfg, key) is not None:
            raise ValueError(f"task.{key} is not a key of {cls.kind} tasks")
    if cfg.prompt:
        try:
            fields = prompt_fields(cfg.prompt)
        except ValueError as err:
            raise ValueError(f"task.prompt: {err}") from None
        if not fields:  # every row would give the same prompt: nothing to learn from
            raise ValueError(
                "task.prompt names no column: write the row's fields in braces, e.g. "
                "'Message: {text}\\nTeam:'"
            )
    cls.check_config(cfg)


def check_run_task(task: TaskConfig, data: DataConfig) -> None:
    """What the task needs of the rest of the run config (ValueError)."""
    preset, cls = preset_of(task), type_of(task)
    templates = preset.templates if preset else ("mezo",)
    if task.template is not None and task.template not in templates:
        raise ValueError(
            f"task.template '{task.template}' is not a template of task '{task.name}'; "
            f"choose one of {', '.join(templates)}"
        )
    generates = cls is GenerationTask
    room = task.max_length - (task.max_new_tokens if generates else 0)
    least = preset.min_prompt_tokens if preset else cls.min_prompt_tokens
    if room < least:
        what = " after task.max_new_tokens" if generates else ""
        raise ValueError(
            f"task.max_length ({task.max_length}) leaves {room} prompt tokens{what}; a "
            f"{task.name} prompt cut below {least} tokens is mostly truncated away: raise it"
        )
    if preset is None and data.source == "synthetic":
        raise ValueError(
            "data.source 'synthetic' is an SST-2-format set; your task reads data.train"
        )
    if preset is None and not data.train:
        raise ValueError(
            f"task '{task.name}' reads your data: set data.train to a CSV, TSV, JSON, JSON "
            "Lines or Parquet file or folder, or a hub data set id"
        )


# ---------------------------------------------------------------- building


def task_spec(cfg: TaskConfig) -> Any:
    """The spec the task type runs: a preset's, or one built from the task keys (before a
    selection: the first candidate's)."""
    cfg = pinned(cfg)
    preset = preset_of(cfg)
    return preset.spec(cfg) if preset is not None else type_of(cfg).spec_from(cfg)


def row_schema(cfg: TaskConfig) -> RowSchema:
    """The columns the task reads from each row and the check of each row: every
    candidate's, when the run selects among several prompts."""
    tasks = [task for _, task in choices(cfg)] or [cfg]
    schemas = [type_of(t).row_schema(task_spec(t)) for t in tasks]
    if len(schemas) == 1:
        return schemas[0]
    columns: dict[str, str] = {}
    for schema in schemas:
        columns.update(schema.columns)

    def check(row: dict, where: str) -> dict:
        out: dict = {}
        for schema in schemas:
            out.update(schema.check(row, where))
        return out

    return RowSchema(columns, check, label=schemas[0].label)


def read_splits(task: TaskConfig, data: DataConfig) -> Splits:
    """The pool / dev / test examples, checked before any model loads: a preset's own files
    without data.train, else ``data.train`` (and dev, test) through the task's row schema."""
    preset = preset_of(task)
    if preset is not None and not data.train:
        if data.group_field:
            raise UserError("data.group_field goes with data.train (your own data)")
        return preset.read(data)
    return own_splits(data, row_schema(task))


def build_task(
    cfg: TaskConfig, tokenizer: Any, *, device: torch.device | str = "cpu", **options: Any
) -> Task:
    """``device`` is where batches are placed (the model's device); ``options`` go to the task.
    A section built outside a run config gets its defaults and checks here (``checked``)."""
    cfg = pinned(checked(cfg))
    return type_of(cfg)(cfg, tokenizer, spec=task_spec(cfg), device=device, **options)
