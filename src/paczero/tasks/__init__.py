"""Tasks: task types (classification, generation) and the presets built on them (SST-2, SQuAD).

A task type is one class that declares how its rows are read (``row_schema``), encoded
(``encode``: tokenise once), batched (``batches``: length-sorted micro-batches with the
positions to scatter results back) and scored (``losses`` per example, float32;
``evaluate``), plus its config keys' checks; see ``base.Task``. A preset is a task type with
a fixed spec and its own reader of the published files (``sst2``, ``squad``); users' own
files are read by ``own_data``; ``splits`` holds the pool / dev / test split they all give.
The ``task`` and ``data`` config sections live in ``options``, the registry in ``registry``.
Adding a task type is one module plus one line in ``registry.TASK_TYPES``; a preset, one
module plus one line in ``registry.PRESETS``.
"""

from __future__ import annotations

from paczero.tasks.base import Task
from paczero.tasks.classification import Batch, ClassificationTask, EncodedSet
from paczero.tasks.generation import GenerationEncoded, GenerationTask
from paczero.tasks.options import DataConfig, TaskConfig
from paczero.tasks.registry import (
    PRESETS,
    TASK_TYPES,
    TASKS,
    build_task,
    checked,
    read_splits,
    row_schema,
)
from paczero.tasks.splits import Splits
from paczero.tasks.squad import SquadEncoded, SquadTask
from paczero.tasks.sst2 import TEMPLATES, SST2Task

__all__ = [
    "PRESETS",
    "TASKS",
    "TASK_TYPES",
    "TEMPLATES",
    "Batch",
    "ClassificationTask",
    "DataConfig",
    "EncodedSet",
    "GenerationEncoded",
    "GenerationTask",
    "SST2Task",
    "Splits",
    "SquadEncoded",
    "SquadTask",
    "Task",
    "TaskConfig",
    "build_task",
    "load_splits",
    "read_splits",
    "row_schema",
]


def load_splits(task: str | TaskConfig, cfg: DataConfig) -> Splits:
    """The pool / dev / test examples of a task: the task type declares how its rows are
    read (``read_splits``); ``task`` is a task config or a preset's name."""
    if not isinstance(task, TaskConfig):
        task = checked(TaskConfig(name=task))
    return read_splits(task, cfg)
