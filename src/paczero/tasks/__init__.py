"""Tasks: small declarative definitions (prompt, label words, per-example loss, metric).

The engine only needs ``encode`` (tokenise once), ``batches`` (length-sorted micro-batches
with positions to scatter results back), ``losses`` (per-example, float32) and
``evaluate``; see ``Task``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from paczero.config import TaskConfig
from paczero.distributed import World
from paczero.errors import UserError
from paczero.tasks.squad import SquadEncoded, SquadTask
from paczero.tasks.sst2 import TEMPLATES, Batch, EncodedSet, SST2Task

TASKS = {"sst2": SST2Task, "squad": SquadTask}

__all__ = [
    "TASKS",
    "TEMPLATES",
    "Batch",
    "EncodedSet",
    "SST2Task",
    "SquadEncoded",
    "SquadTask",
    "Task",
    "build_task",
]


class Task(Protocol):
    name: str
    metric: str
    metric_mode: str  # "max" or "min": which way the metric improves

    def encode(self, examples: Sequence[dict]) -> EncodedSet: ...

    def batches(
        self, encoded: EncodedSet, indices: np.ndarray, max_sequences: int
    ) -> Iterator[tuple[np.ndarray, Batch]]: ...

    def losses(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor: ...

    def predict(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor: ...

    def evaluate(
        self, model: torch.nn.Module, encoded: EncodedSet, batch_size: int, world: World = ...
    ) -> dict: ...

    def describe(self) -> str: ...


def build_task(
    cfg: TaskConfig, tokenizer: Any, *, device: torch.device | str = "cpu", **options: Any
) -> Task:
    """``device`` is where batches are placed (the model's device); ``options`` go to the task."""
    cls = TASKS.get(cfg.name)
    if cls is None:
        raise UserError(f"unknown task.name '{cfg.name}': choose one of {', '.join(TASKS)}")
    return cls(cfg, tokenizer, device=device, **options)
