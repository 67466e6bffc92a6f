"""What a run builds from its config, in one place: data, model, task, mechanism, optimizer.

Training, resume, export, evaluation and the benchmark all start from ``build_session``, so
they read the same pool, initialise the same model from the public stream and batch the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paczero import progress
from paczero import selection as selection_stage
from paczero.config import RunConfig
from paczero.distributed import SOLO, RankZeroMechanism, World, shard, unowned
from paczero.engine.batch_budget import auto_tokens
from paczero.engine.optim import ZOOptimizer
from paczero.errors import UserError
from paczero.mechanisms import Mechanism
from paczero.models import LoadedModel, load_model
from paczero.privacy.randomness import RandomStream, public_stream
from paczero.selection import Selection
from paczero.tasks import Splits, Task, TaskConfig, build_task
from paczero.tasks.base import Encoded
from paczero.tasks.canaries import add_canaries
from paczero.tasks.registry import choices, read_splits

LORA_EXACT_FRACTION = 0.05  # snapshot-restore when the trainable set is this small


@dataclass(frozen=True)
class Units:
    """The privacy units of the pool (``data.group_field``): each unit's rows, as positions
    in the encoded pool. The mechanism's examples are the units: it sees one derivative per
    unit, the mean of its rows' derivatives, and subsets and samples whole units."""

    rows: tuple[np.ndarray, ...]
    field: str

    def __len__(self) -> int:
        return len(self.rows)

    def expand(self, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the rows of ``units``, unit after unit; for each row, its unit's position in
        ``units``)."""
        parts = [self.rows[int(u)] for u in np.asarray(units, dtype=np.int64)]
        if not parts:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        owner = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
        return np.concatenate(parts).astype(np.int64), owner


def pool_losses(
    model: torch.nn.Module,
    task: Task,
    encoded: Encoded,
    indices: np.ndarray,
    micro_batch: int,
    world: World = SOLO,
    units: Units | None = None,
) -> torch.Tensor:
    """Per-example losses of the given rows, in the order of ``indices``. In a
    multi-process ``world`` each rank computes its share of the micro-batches and every
    rank gets the whole vector, bit-identical to one process. With ``units``, ``indices``
    are units and each gets the mean loss of its rows (float32, summed in float64)."""
    if units is not None:
        rows, owner = units.expand(indices)
        per_row = pool_losses(model, task, encoded, rows, micro_batch, world)
        n = len(np.asarray(indices))
        sums = torch.zeros(n, dtype=torch.float64).index_add_(
            0, torch.from_numpy(owner), per_row.double()
        )
        sizes = torch.from_numpy(np.bincount(owner, minlength=n)).double()
        return (sums / sizes).float()
    out = unowned(len(indices))
    for positions, batch in shard(task.batches(encoded, indices, micro_batch), world):
        out[torch.as_tensor(positions)] = task.losses(model, batch).float().cpu()
    return world.sum(out)


def learning_rate(cfg: RunConfig, step: int) -> float:
    if cfg.train.schedule == "linear":
        return cfg.train.lr * (1.0 - step / cfg.train.steps)
    return cfg.train.lr


def restore_mode(
    cfg: RunConfig, model: torch.nn.Module, trainable: list[tuple[str, torch.Tensor]]
) -> str:
    if cfg.zo.restore != "auto":
        return cfg.zo.restore
    total = sum(p.numel() for p in model.parameters())
    small = sum(p.numel() for _, p in trainable) <= LORA_EXACT_FRACTION * total
    return "exact" if small else "fused"


@dataclass
class Session:
    """Everything a run builds from its config (and its secret stream)."""

    cfg: RunConfig
    public: RandomStream
    secret: RandomStream | None  # None on ranks other than 0
    secret_source: str
    loaded: LoadedModel
    task: Task
    pool: Encoded
    dev: Encoded
    test: Encoded
    provenance: str
    mechanism: Mechanism | RankZeroMechanism
    optimizer: Any  # ZOOptimizer, or firstorder.FirstOrderOptimizer for dp-sgd / backprop
    restore: str
    world: World = SOLO
    units: Units | None = None  # data.group_field: the pool's privacy units
    coverage: dict | None = None  # what the guarantee covers (Splits.coverage, public)
    # the prompt fields of each dev and test row, beside the per-row predictions
    inputs: dict[str, list[dict]] = field(default_factory=dict)
    # the selection stage's outcome when this session ran it (paczero.selection), and the
    # task the run trains with (the chosen candidate's; cfg.task when pinned)
    selection: Selection | None = None
    task_cfg: TaskConfig | None = None

    @property
    def trainable(self) -> list[tuple[str, torch.Tensor]]:
        return self.loaded.trainable

    @property
    def pool_size(self) -> int:
        """The mechanism's examples: units with data.group_field, else rows."""
        return len(self.pool) if self.units is None else len(self.units)


def model_positions(model: torch.nn.Module) -> int | None:
    """The longest sequence the model takes (its position table), if it says."""
    config = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def fit_task(task: TaskConfig, model: torch.nn.Module) -> TaskConfig:
    """``task.max_length`` cut to the model's positions (SQuAD's default 2048 on a model
    of 512 positions): prompts are truncated to fit instead of the run being refused."""
    limit = model_positions(model)
    if limit is None or task.max_length <= limit:
        return task
    return task.model_copy(update={"max_length": limit})


def build_task_for(cfg: RunConfig, loaded: LoadedModel) -> Task:
    """The run's task, batching for the model's device (``zo.micro_batch_tokens``), its
    lengths fitted to the model (``fit_task``)."""
    budget = cfg.zo.micro_batch_tokens
    task = fit_task(cfg.task, loaded.model)
    if budget == "auto":
        size = torch.tensor([], dtype=loaded.dtype).element_size()
        budget = auto_tokens(loaded.device, loaded.model, size, task.max_length)
    elif budget == "off":
        budget = None
    return build_task(task, loaded.tokenizer, device=loaded.device, max_batch_tokens=budget)


def build_session(
    cfg: RunConfig,
    secret: RandomStream | None,
    secret_source: str,
    world: World = SOLO,
    run_path: Path | None = None,
) -> Session:
    """The run's pieces; on ranks other than 0 the mechanism is a public stand-in and
    there is no secret stream. A run that selects its prompt runs the selection stage
    here, before anything is trained; ``run_path``: an existing run (resume), whose
    choice is read from its public log instead."""
    public = public_stream(cfg.seed.public)
    splits = read_splits(cfg.task, cfg.data)  # every row checked before the model loads
    loaded = load_model(cfg.model, seed=public.seed("model-init"))
    selection = None
    if run_path is not None:
        task_cfg = selection_stage.chosen_task(cfg.task, run_path)
    elif choices(cfg.task):
        selection = select_prompt(cfg, splits, loaded, public, world)
        task_cfg = dict(choices(cfg.task))[selection.chosen]
    else:
        task_cfg = cfg.task
    task = build_task_for(cfg.model_copy(update={"task": task_cfg}), loaded)
    pool, dev, test = (task.encode(part) for part in (splits.pool, splits.dev, splits.test))
    cls = cfg.mechanism_type  # looked up once, with the config
    task, pool, _ = add_canaries(  # docs/audit.md 4
        cfg, task, pool, splits.pool, public, secret, cls.uses_subsets
    )
    units = pool_units(splits, len(pool))
    pool_size = len(pool) if units is None else len(units)
    coverage = {**splits.coverage(), "pool_units": pool_size, "select": cfg.train.select}
    sizes = {"pool_size": pool_size, "steps": cfg.train.steps, "directions": cfg.zo.directions}
    if cls.first_order and not world.solo:
        raise UserError(f"{cfg.mechanism.name} runs in one process; start it without torchrun")
    mechanism = cls(cfg.mechanism, **sizes) if world.is_main else RankZeroMechanism(cls, **sizes)
    restore = restore_mode(cfg, loaded.model, loaded.trainable)
    if mechanism.first_order:
        optimizer = first_order_optimizer(cfg, loaded, task, pool, mechanism, public, secret)
        restore = "none"
    else:
        optimizer = zo_optimizer(cfg, loaded, mechanism, restore, public, secret, world)
    provenance = getattr(splits, "provenance", "official")
    inputs = {"dev": task.inputs(splits.dev), "test": task.inputs(splits.test)}
    return Session(
        cfg, public, secret, secret_source, loaded, task, pool, dev, test, provenance,
        mechanism, optimizer, restore, world, units, coverage, inputs, selection, task_cfg,
    )  # fmt: skip


def select_prompt(
    cfg: RunConfig, splits: Splits, loaded: LoadedModel, public: RandomStream, world: World
) -> Selection:
    """The selection stage over the pool (``paczero.selection``): each candidate's
    per-example losses by the untrained model, batched as training batches them."""
    from paczero.engine.batch_budget import micro_batch_rows

    units = pool_units(splits, len(splits.pool))
    rows_cap = micro_batch_rows(cfg.zo.micro_batch, cfg.zo.micro_batch_tokens, loaded.device)

    def score(task_cfg: TaskConfig, rows: list[dict]) -> np.ndarray:
        task = build_task_for(cfg.model_copy(update={"task": task_cfg}), loaded)
        encoded = task.encode(rows)
        n = len(encoded) if units is None else len(units)
        out = pool_losses(loaded.model, task, encoded, np.arange(n), rows_cap, world, units)
        return out.double().numpy()

    size = len(splits.pool) if units is None else len(units)
    chat_ok = bool(getattr(loaded.tokenizer, "chat_template", None))
    with progress.phase("prompt selection"):
        return selection_stage.select(
            cfg, choices(cfg.task), splits.pool, score, public, size, chat_ok
        )


def zo_optimizer(cfg, loaded, mechanism, restore, public, secret, world) -> ZOOptimizer:
    return ZOOptimizer(
        [p for _, p in loaded.trainable],
        mechanism,
        cfg.train.lr,
        cfg.zo.eps,
        directions=cfg.zo.directions,
        batch_size=None if cfg.train.batch_size == "full" else cfg.train.batch_size,
        restore=restore,
        public=public,
        secret=secret,
        world=world,
    )


def first_order_optimizer(cfg, loaded, task, pool, mechanism, public, secret):
    """dp-sgd and backprop: whole-gradient steps over the same pool, task and batching."""
    from paczero.engine.batch_budget import micro_batch_rows
    from paczero.engine.firstorder import FirstOrderOptimizer

    rows_cap = micro_batch_rows(cfg.zo.micro_batch, cfg.zo.micro_batch_tokens, loaded.device)
    return FirstOrderOptimizer(
        loaded.model,
        loaded.trainable,
        mechanism,
        cfg.train.lr,
        batches=lambda rows: task.batches(pool, rows, rows_cap),
        losses=lambda batch: task.losses(loaded.model, batch),
        optimizer=cfg.mechanism.optimizer,
        batch_size=None if cfg.train.batch_size == "full" else cfg.train.batch_size,
        public=public,
        secret=secret,
    )


def pool_units(splits: Splits, pool_rows: int) -> Units | None:
    """The pool's units (None without data.group_field); rows past the data's own (audit
    canaries) are a unit each."""
    if splits.units is None:
        return None
    extra = tuple(np.array([i], dtype=np.int64) for i in range(len(splits.pool), pool_rows))
    return Units(tuple(splits.units) + extra, str(splits.unit_field))


@torch.no_grad()
def load_named(trainable: list[tuple[str, torch.Tensor]], tensors: dict[str, torch.Tensor]) -> None:
    """Copy saved tensors into the trainable parameters of the same names."""
    for name, param in trainable:
        param.copy_(tensors[name].to(param.device, param.dtype))
