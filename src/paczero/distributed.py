"""Data parallel over torch.distributed: per-example scalars cross the wire, nothing else.

Every rank holds the model, the pool and the public stream. A step's micro-batches are
built exactly as in one process and assigned whole to ranks, balanced by padded tokens;
each rank computes the per-example losses of its own, and one all-reduce sums the N-vector
(each position has one contributor, so the sum is exact and the vector is bit-identical to
one process). The mechanism and the secret stream live on rank 0 only: it releases, logs,
and broadcasts the coefficients; every rank applies the same seeded update. DP steps, whose
rows are a secret sample, run on rank 0 alone: the sample never leaves it
(docs/scaling.md).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch

from paczero.errors import UserError
from paczero.mechanisms.base import CAPABILITIES

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of one run (one rank when not under torchrun)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def solo(self) -> bool:
        return self.size == 1

    def owners(self, costs: list[float]) -> list[int]:
        """The rank of each work item, balancing the summed cost; the same on every rank
        (greedy by decreasing cost, ties to the lowest rank)."""
        owner = [0] * len(costs)
        if self.size == 1:
            return owner
        load = [0.0] * self.size
        for item in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
            rank = min(range(self.size), key=lambda r: (load[r], r))
            owner[item] = rank
            load[rank] += costs[item]
        return owner

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (in place on a CPU tensor copy)."""
        if self.size == 1:
            return values
        out = values.detach().to("cpu").contiguous().clone()
        _collective(lambda: torch.distributed.all_reduce(out))
        return out

    def sum_array(self, values: np.ndarray) -> np.ndarray:
        """``sum`` for a float64 numpy array (evaluation metrics per example)."""
        if self.size == 1:
            return values
        return self.sum(torch.from_numpy(np.asarray(values, dtype=np.float64))).numpy()

    def merge(self, items: list[Any]) -> list[Any]:
        """Per-row values that each rank filled for its own rows (``None`` elsewhere), whole
        on every rank (generated answers, which no sum can combine)."""
        if self.size == 1:
            return items
        parts: list[Any] = [None] * self.size
        _collective(lambda: torch.distributed.all_gather_object(parts, items))
        return [next((p[i] for p in parts if p[i] is not None), None) for i in range(len(items))]

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if self.size == 1:
            return obj
        box = [obj if self.is_main else None]
        _collective(lambda: torch.distributed.broadcast_object_list(box, src=0))
        return box[0]

    def on_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` on rank 0, its value (or its one-line error) on every rank."""
        if self.size == 1:
            return compute()
        outcome: tuple[str, Any] = ("ok", None)
        if self.is_main:
            try:
                outcome = ("ok", compute())
            except UserError as err:
                outcome = ("error", str(err))
        kind, value = self.broadcast(outcome)
        if kind == "error":
            raise _everywhere(UserError(value))
        return value

    def check_same(self, what: str, value: str) -> None:
        """Stop every rank with one line when the ranks disagree on ``value``."""
        if self.size == 1:
            return
        values: list[Any] = [None] * self.size
        _collective(lambda: torch.distributed.all_gather_object(values, value))
        odd = [r for r, v in enumerate(values) if v != values[0]]
        if odd:
            raise _everywhere(
                UserError(
                    f"rank(s) {', '.join(map(str, odd))} disagree with rank 0 on {what}; every "
                    "rank must run the same config on the same data and model"
                )
            )

    def barrier(self) -> None:
        if self.size > 1:
            _collective(torch.distributed.barrier)


SOLO = World()


def _everywhere(err: UserError) -> UserError:
    """Mark an error every rank raises alike: only rank 0 needs to print it."""
    err.everywhere = True
    return err


def _collective(call) -> Any:
    try:
        return call()
    except RuntimeError as err:  # a peer died or the connection broke
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"another rank of this run stopped ({first[:160]}); every rank stops. Resume "
            "with `paczero resume RUN_DIR` under any number of processes"
        ) from None


# Modules whose functions take ``group=group.WORLD`` as a default argument. Imported after
# init_process_group (transformers imports them when it loads a model), they hold the live
# default group, so destroy_process_group cannot free it: its gloo threads then outlive the
# interpreter, and a rank's exit aborts (SIGABRT, "terminate called without an active
# exception"; half the exits of a two-rank script that imports them late). Imported
# before, they hold None.
BIND_THE_GROUP_ON_IMPORT = (
    "torch.distributed.nn.functional",
    "torch.distributed.fsdp.sharded_grad_scaler",
    "torch.distributed.optim.zero_redundancy_optimizer",
)


def init_world(device: str = "auto") -> World:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT), or
    return the one-rank world. NCCL on GPUs, gloo on CPU."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SOLO
    rank = int(os.environ["RANK"])
    if not torch.distributed.is_initialized():
        for module in BIND_THE_GROUP_ON_IMPORT:
            importlib.import_module(module)
        use_cuda = torch.cuda.is_available() and device != "cpu"
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
        backend = "nccl" if use_cuda else "gloo"
        try:
            torch.distributed.init_process_group(
                backend, rank=rank, world_size=size, timeout=timedelta(minutes=30)
            )
        except (RuntimeError, ValueError) as err:
            raise UserError(f"cannot join the {size}-process group: {err}") from None
    return World(rank=rank, size=size)


def close_world(world: World) -> None:
    if world.size > 1 and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def leave_together(world: World) -> None:
    """Ranks that finished meet once more before the group is torn down, so that no rank
    tears gloo down while rank 0 still writes the model, result and plots."""
    world.barrier()
    close_world(world)


def fingerprint(config: dict[str, Any], tensors: list[tuple[str, torch.Tensor]]) -> str:
    """What every rank must agree on before the first step: the resolved config and the
    trainable tensors (theta_0 or the resumed theta)."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name, tensor in tensors:
        h.update(name.encode())
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(flat.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def shard(batches, world: World) -> Any:
    """This rank's micro-batches of ``(positions, batch)`` items: all of them in one process
    (the iterator untouched), else the ones ``owners`` gives it by padded tokens."""
    if world.size == 1:
        return batches
    items = list(batches)
    owners = world.owners([float(batch.input_ids.numel()) for _, batch in items])
    return [item for item, owner in zip(items, owners, strict=True) if owner == world.rank]


def unowned(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The value of positions another rank computes: -0.0, since x + (-0.0) == x exactly for
    every x (signed zeros included), so the all-reduced vector is bit-identical."""
    return torch.full((n,), -0.0, dtype=dtype)


class RankZeroMechanism:
    """The mechanism as every other rank sees it: its public facts and nothing secret
    (the real one, its state and the secret stream exist on rank 0 only)."""

    def __init__(self, cls: type, *, pool_size: int, steps: int, directions: int):
        self.name = cls.name
        for capability in CAPABILITIES:  # declared on the class: public facts
            setattr(self, capability, getattr(cls, capability))
        self.pool_size = pool_size
        self.steps = steps
        self.directions = directions
        self.configure_s = 0.0

    exhausted = False  # rank 0 decides, and broadcasts its decision

    def setup(self, public: Any, secret: Any) -> None:
        """Nothing to draw: the candidates' secret index lives on rank 0."""

    def batch(self, step: int) -> None:
        return None

    def release_step(self, derivatives: Any, ctx: Any) -> Any:
        raise RuntimeError("only rank 0 releases")

    def spent(self) -> dict[str, Any]:
        return {}
