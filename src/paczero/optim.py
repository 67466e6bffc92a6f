"""One private zeroth-order step, usable in your own loop with your own model and loss.

    opt = ZOOptimizer(params, PACZeroZPL(pool_size=N, steps=T, directions=1), lr=1e-3)
    for _ in range(T):
        opt.step(lambda: my_per_example_losses(model, pool))   # a float tensor of shape (N,)

The step reads top to bottom: direction seeds from the public stream, per-example
derivatives from two forward passes, one release per direction, the release logged (if a
``before_update`` hook is given) before theta moves, then the update fused with the restore.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from paczero.mechanisms.base import Mechanism, Release, StepContext
from paczero.privacy.randomness import RandomStream, public_stream, secret_stream
from paczero.zo import LossFn, ZOEstimator


@dataclass
class StepResult:
    step: int
    lr: float
    seeds: list[int]
    releases: list[Release]
    loss: float  # mean of (l+ + l-)/2 over the batch and the directions

    @property
    def coeffs(self) -> list[float]:
        return [float(r.coeff) for r in self.releases]


class ZOOptimizer:
    def __init__(
        self,
        params: Sequence[torch.Tensor],
        mechanism: Mechanism,
        lr: float,
        eps: float = 1e-3,
        *,
        directions: int = 1,
        restore: str = "exact",
        public: RandomStream | int = 0,
        secret: RandomStream | int | None = None,
    ):
        self.mechanism = mechanism
        self.lr = lr
        self.directions = directions
        self.estimator = ZOEstimator(params, eps, restore=restore)
        self.public = public if isinstance(public, RandomStream) else public_stream(public)
        if isinstance(secret, RandomStream):
            self.secret, self.secret_source = secret, "given"
        else:
            self.secret, self.secret_source = secret_stream(secret)
        self.step_index = 0
        mechanism.setup(self.public, self.secret)

    def step(
        self,
        losses: LossFn,
        indices: np.ndarray | None = None,
        lr: float | None = None,
        before_update: Callable[[StepResult], None] | None = None,
    ) -> StepResult:
        """``losses()`` returns per-example losses (rows ``indices`` of the pool) at theta."""
        step, k_total = self.step_index, self.directions
        seeds = [self.public.seed("direction", step, k) for k in range(k_total)]
        estimates = [
            self.estimator.estimate(seed, losses, defer_restore=k == k_total - 1)
            for k, seed in enumerate(seeds)
        ]
        derivatives = np.stack([e.derivatives for e in estimates])
        rows = np.arange(derivatives.shape[1]) if indices is None else indices
        ctx = StepContext(step, 0, rows, self.public, self.secret)
        releases = self.mechanism.release_step(derivatives, ctx)
        loss = sum(e.loss for e in estimates) / k_total
        result = StepResult(step, self.lr if lr is None else lr, seeds, releases, loss)
        if before_update is not None:
            before_update(result)  # write-ahead: the release is durable before theta moves
        amounts = [result.lr * c / k_total for c in result.coeffs]
        self.estimator.update(list(zip(seeds, amounts, strict=True)))
        self.step_index += 1
        return result
