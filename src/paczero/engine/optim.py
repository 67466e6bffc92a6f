"""One private zeroth-order step, usable in your own loop with your own model and loss.

    opt = ZOOptimizer(params, PACZeroZPL(pool_size=N, steps=T, directions=1), lr=1e-3)
    for _ in range(T):
        opt.step(lambda rows: my_per_example_losses(model, pool[rows]))  # shape (len(rows),)

The step reads top to bottom: the rows of the step (chosen here, in one place), direction
seeds from the public stream, per-example derivatives from two forward passes, one release
per direction, the release logged (if a ``before_update`` hook is given) before theta
moves, then the update fused with the restore.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from paczero.distributed import SOLO, World
from paczero.engine.zo import ZOEstimator
from paczero.mechanisms.base import Mechanism, Release, StepContext
from paczero.privacy.randomness import RandomStream, public_stream, secret_stream
from paczero.records import jsonable

RowLosses = Callable[[np.ndarray], torch.Tensor]  # pool rows -> their per-example losses


@dataclass
class StepResult:
    step: int
    lr: float
    seeds: list[int]
    coeffs: list[float]  # the released coefficients, one per direction
    releases: list[Release]  # the mechanism's releases (rank 0 only; empty elsewhere)
    loss: float  # mean of (l+ + l-)/2 over the rows and the directions
    rows: np.ndarray  # the pool rows the step used (on rank 0)
    rows_secret: bool  # chosen from the secret stream: rows, loss and their count are secret


def public_minibatch(
    public: RandomStream, step: int, pool_size: int, batch_size: int | None
) -> np.ndarray:
    """The step's rows from the public stream; None (or >= N) is the whole pool."""
    if batch_size is None or batch_size >= pool_size:
        return np.arange(pool_size)
    rng = public.generator("batch", step)
    return np.sort(rng.choice(pool_size, size=batch_size, replace=False))


class ZOOptimizer:
    """Zeroth-order steps released through ``mechanism``.

    Where a step's rows come from is decided here and nowhere else: a mechanism that must
    choose them (DP Poisson sampling from the secret stream) does; otherwise a public
    minibatch of ``batch_size`` rows (None: the whole pool) or the caller's ``indices``.
    The loss function is called with those rows, so it can never compute over other rows
    than the ones the mechanism accounts for.

    In a multi-process ``world`` (torchrun) every rank runs the step; the loss function is
    called as ``losses(rows, world=...)`` and must return the whole row vector on every rank
    of that world (``session.pool_losses`` shards its micro-batches). Rank 0 alone holds
    the mechanism, releases and broadcasts the coefficients. A step on secret rows runs on
    rank 0 alone; the other ranks redo its update from the coefficients.
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        mechanism: Mechanism,
        lr: float,
        eps: float = 1e-3,
        *,
        directions: int = 1,
        batch_size: int | None = None,
        restore: str = "exact",
        public: RandomStream | int = 0,
        secret: RandomStream | int | None = None,
        world: World = SOLO,
    ):
        if mechanism.first_order:
            raise ValueError(
                f"{mechanism.name} is a first-order mechanism (it releases gradients): use "
                "paczero.engine.firstorder.FirstOrderOptimizer, not ZOOptimizer"
            )
        if directions != mechanism.directions:
            raise ValueError(
                f"the optimizer takes {directions} directions per step but the mechanism "
                f"was built for {mechanism.directions}"
            )
        self.mechanism = mechanism
        self.lr = lr
        self.directions = directions
        self.batch_size = batch_size
        self.estimator = ZOEstimator(params, eps, restore=restore)
        self.public = public if isinstance(public, RandomStream) else public_stream(public)
        if not world.is_main:  # the secret stream exists on rank 0 only
            self.secret, self.secret_source = None, "rank 0"
        elif isinstance(secret, RandomStream):
            self.secret, self.secret_source = secret, "given"
        else:
            self.secret, self.secret_source = secret_stream(secret)
        self.world = world
        self.step_index = 0
        self.rows_secret = False  # whether the current step's rows are secret (see ``rows``)
        mechanism.setup(self.public, self.secret)

    def rows(self, step: int, indices: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
        """(pool rows of ``step``, whether they are secret)."""
        if self.mechanism.chooses_rows and not self.world.is_main:
            return np.empty(0, dtype=np.int64), True  # rank 0's secret sample
        sampled = self.mechanism.batch(step)
        if sampled is not None:
            if indices is not None:
                raise ValueError(
                    f"{self.mechanism.name} chooses each step's rows itself (Poisson sampling "
                    "from the secret stream, which its accounting assumes); do not pass indices"
                )
            return np.asarray(sampled), True
        if indices is not None:
            return np.asarray(indices), False
        pool = self.mechanism.pool_size
        return public_minibatch(self.public, step, pool, self.batch_size), False

    def step(
        self,
        losses: RowLosses,
        indices: np.ndarray | None = None,
        lr: float | None = None,
        before_update: Callable[[StepResult], None] | None = None,
    ) -> StepResult:
        """``losses(rows)`` returns the per-example losses of those pool rows at theta."""
        _check_takes_rows(losses)
        step, k_total, world = self.step_index, self.directions, self.world
        rows, secret_rows = self.rows(step, indices)
        self.rows_secret = secret_rows  # the loss function may ask while the step runs
        lr = self.lr if lr is None else lr
        seeds = [self.public.seed("direction", step, k) for k in range(k_total)]
        if secret_rows and not world.is_main:  # rank 0 computes the secret sample alone
            coeffs = world.broadcast(None)
            self.estimator.replay(seeds, [lr * c / k_total for c in coeffs])
            self.step_index += 1
            return StepResult(step, lr, seeds, coeffs, [], float("nan"), rows, True)
        shard = SOLO if secret_rows else world

        def row_losses() -> torch.Tensor:
            out = losses(rows) if world.solo else losses(rows, world=shard)
            if tuple(out.shape) != (len(rows),):
                raise ValueError(
                    f"the loss function returned shape {tuple(out.shape)} for {len(rows)} rows; "
                    "it must return one loss per row it is given"
                )
            return out

        estimates = [
            self.estimator.estimate(seed, row_losses, defer_restore=k == k_total - 1)
            for k, seed in enumerate(seeds)
        ]
        loss = sum(e.loss for e in estimates) / k_total
        releases: list[Release] = []
        coeffs: list[float] | None = None
        if world.is_main:
            derivatives = np.stack([e.derivatives for e in estimates])
            ctx = StepContext(step, 0, rows, self.public, self.secret)
            releases = self.mechanism.release_step(derivatives, ctx)
            coeffs = [float(r.coeff) for r in releases]
        result = StepResult(step, lr, seeds, coeffs or [], releases, loss, rows, secret_rows)
        if before_update is not None:
            before_update(result)  # write-ahead: the release is durable before theta moves
        result.coeffs = world.broadcast(coeffs)
        amounts = [lr * c / k_total for c in result.coeffs]
        self.estimator.update(list(zip(seeds, amounts, strict=True)))
        self.step_index += 1
        return result


def _check_takes_rows(losses: Callable) -> None:
    try:
        params = inspect.signature(losses).parameters.values()
    except (TypeError, ValueError):
        return  # a builtin or C callable: let the call itself decide
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional and not any(p.kind == p.VAR_POSITIONAL for p in params):
        raise TypeError(
            "the loss function must take the step's pool rows (an index array) and return "
            "their per-example losses: opt.step(lambda rows: losses(model, pool[rows]))"
        )


def private_record(result: StepResult) -> dict[str, Any]:
    """The secret side of a step: S*-dependent values and noise of every release and,
    for secret rows, the rows' loss and count."""
    record: dict[str, Any] = {
        "step": result.step,
        "releases": [jsonable(r.private) for r in result.releases],
    }
    if result.rows_secret:
        loss = result.loss if math.isfinite(result.loss) else None  # None: an empty sample
        record.update(loss=loss, batch_size=len(result.rows))
    return record
