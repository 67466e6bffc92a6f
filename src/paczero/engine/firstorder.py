"""The first-order baselines' step: DP-SGD (Opacus per-example gradients) and backpropagation.

A zeroth-order step releases one scalar per direction; a first-order step releases a whole
gradient. The step reads top to bottom like ``ZOOptimizer.step``: the rows (the mechanism's
secret Poisson sample for ``dp-sgd``, a public minibatch for ``backprop``), the sum of the
per-example gradients over them (each clipped to L2 norm C for ``dp-sgd``, computed with
Opacus's ``GradSampleModule`` hooks), the mechanism's release of a mean gradient (noise from
the secret stream for ``dp-sgd``), the release logged (``before_update``) before theta
moves, then a torch optimizer step (SGD or Adam: post-processing of the release).

Opacus is imported only here and only for ``dp-sgd`` (``pip install paczero[dpsgd]``).
Layers Opacus has no per-example gradient for (Llama's RMSNorm, OPT's learned positions)
are frozen for ``dp-sgd`` and named in the report.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from paczero.engine.optim import public_minibatch
from paczero.errors import Diverged, UserError
from paczero.mechanisms.base import Release, StepContext
from paczero.mechanisms.firstorder import MISSING_OPACUS
from paczero.privacy.randomness import RandomStream
from paczero.tasks.batch import differentiable

OPTIMIZERS = ("sgd", "adam")
OPTIMIZER_PREFIX = "optimizer/"  # checkpoint names of the optimizer's tensors


def grad_sample_module() -> type:
    """Opacus's ``GradSampleModule`` (a one-line UserError naming the extra without it)."""
    try:
        from opacus.grad_sample import GradSampleModule
    except ImportError:
        raise UserError(MISSING_OPACUS) from None
    return GradSampleModule


def freeze_unsupported(model: torch.nn.Module) -> list[str]:
    """Freeze the trainable parameters of layers Opacus has no per-example gradient for,
    and name them: their gradient could not be clipped per example, so DP-SGD leaves them
    at their initial values (Opacus's functorch fallback is not used)."""
    supported = grad_sample_module().GRAD_SAMPLERS
    frozen = []
    for module_name, module in model.named_modules():
        own = [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad]
        if own and type(module) not in supported:
            for name, param in own:
                param.requires_grad_(False)
                frozen.append(f"{module_name}.{name}" if module_name else name)
    return frozen


def _hooked_layers_training(model: torch.nn.Module) -> None:
    """Opacus records activations only in modules in training mode; turn it on for the
    layers that own trainable parameters and nothing else, so dropout stays off and the
    forward pass is the one the zeroth-order step and the evaluation see."""
    for module in model.modules():
        if any(p.requires_grad for p in module.parameters(recurse=False)):
            module.training = True


@dataclass
class GradientSums:
    """One step's gradient over its rows: per tensor, the sum of the (clipped) per-example
    gradients; what the mechanism privatises."""

    sums: list[torch.Tensor]
    count: int  # examples in the rows (secret for a Poisson sample)
    loss: float  # their mean loss (secret for a Poisson sample)
    clipped: int = 0  # examples whose gradient norm exceeded C (secret)


@dataclass
class GradientStep:
    """What one first-order step did; ``release`` holds the released mean gradient."""

    step: int
    lr: float
    kind: str
    loss: float
    rows: np.ndarray
    rows_secret: bool
    public: dict[str, Any] = field(default_factory=dict)
    private: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)  # no public direction: none
    coeffs: list[float] = field(default_factory=list)  # no coefficient: the release is a gradient

    @property
    def releases(self) -> list[Release]:
        """The step as one release record for the log (its coefficient is never written)."""
        return [Release(math.nan, self.kind, 0.0, self.public, self.private)]


RowBatches = Callable[[np.ndarray], Any]  # rows -> iterator of (positions, task batch)


class FirstOrderOptimizer:
    """First-order steps released through a first-order mechanism (``dp-sgd`` or
    ``backprop``, ``paczero.mechanisms.firstorder``).

    ``batches(rows)`` yields the task's micro-batches of those pool rows and
    ``losses(batch)`` their per-example losses; the optimizer chooses the rows (the
    mechanism's secret Poisson sample, else a public minibatch of ``batch_size``), so the
    losses are never computed over rows the mechanism does not account for.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        params: Sequence[tuple[str, torch.Tensor]],
        mechanism: Any,
        lr: float,
        *,
        batches: RowBatches,
        losses: Callable[[Any], torch.Tensor],
        optimizer: str = "sgd",
        batch_size: int | None = None,
        public: RandomStream,
        secret: RandomStream | None,
    ):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
        self.model, self.mechanism, self.lr = model, mechanism, lr
        self.batches, self.losses = batches, losses
        self.batch_size = batch_size
        self.public, self.secret = public, secret
        self.per_example = mechanism.per_example
        self.frozen: list[str] = []
        if self.per_example:
            grad_sample_module()  # the missing extra, before anything is changed
            self.frozen = freeze_unsupported(model)
            mechanism.frozen = tuple(self.frozen)  # its report names them
        self.params = [(n, p) for n, p in params if p.requires_grad]
        if not self.params:
            raise UserError(
                f"{mechanism.name}: no trainable tensor has a per-example gradient in Opacus "
                f"(frozen: {', '.join(self.frozen[:4])}); train LoRA (model.track: lora)"
            )
        tensors = [p for _, p in self.params]
        make = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
        self.optimizer = make(tensors, lr=lr)
        self._gsm = None
        if self.per_example:
            self._gsm = grad_sample_module()(
                model, batch_first=True, loss_reduction="sum", strict=False
            )
        self.step_index = 0
        mechanism.setup(public, secret)

    # ------------------------------------------------------------ rows and gradients

    def rows(self, step: int) -> tuple[np.ndarray, bool]:
        """(pool rows of ``step``, whether they are secret)."""
        sampled = self.mechanism.batch(step)
        if sampled is not None:
            return np.asarray(sampled), True
        pool = self.mechanism.pool_size
        return public_minibatch(self.public, step, pool, self.batch_size), False

    def gradient_sums(self, rows: np.ndarray, clip: float | None) -> GradientSums:
        """Sum over ``rows`` of each example's gradient, clipped to L2 norm ``clip``
        (per example, over all trainable tensors together) when ``clip`` is set."""
        sums = [torch.zeros_like(p, dtype=torch.float32) for _, p in self.params]
        loss_sum, count, clipped = 0.0, 0, 0
        for _, batch in self.batches(rows):
            for _, p in self.params:
                p.grad = None
            if self.per_example:
                _hooked_layers_training(self.model)
            with torch.enable_grad(), differentiable(), warnings.catch_warnings():
                # Opacus's hooks on a first layer whose input needs no gradient (ids): noise
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                losses = self.losses(batch)
                n = int(losses.shape[0])
                finite = torch.isfinite(losses.detach())
                constant = not losses.requires_grad  # e.g. excluded audit canaries: loss 0
                if not constant:
                    losses.sum().backward()
            count += n
            loss_sum += float(losses.detach()[finite].double().sum())
            if constant:  # a zero gradient for each of its examples
                continue
            if clip is None:
                for total, (_, p) in zip(sums, self.params, strict=True):
                    if p.grad is not None:
                        total += p.grad.float()
                continue
            clipped += self._add_clipped(sums, n, clip, finite)
        for _, p in self.params:
            p.grad = None
        loss = loss_sum / count if count else float("nan")
        return GradientSums(sums, count, loss, clipped)

    def _add_clipped(
        self, sums: list[torch.Tensor], n: int, clip: float, finite: torch.Tensor
    ) -> int:
        """Clip each example's gradient (Opacus's ``grad_sample``) and add it to ``sums``.
        A forward row per option (multi-token label words) is summed into its example.
        An example whose loss or gradient is not finite counts 0 (the clip bounds it)."""
        # The per-example gradients are the step's memory (n copies of the trainable
        # tensors), so nothing here makes another full-size temporary: in-place clean-up,
        # norms by reduction, the clipped sum as one matrix-vector product per tensor.
        per_example = []
        sq_norms = torch.zeros(n, dtype=torch.float64)
        for _, p in self.params:
            sample = p.grad_sample
            p.grad_sample = None
            if sample is None:  # a tensor this batch's graph did not reach
                sample = torch.zeros((n, *p.shape), dtype=p.dtype, device=p.device)
            sample = sample.float()
            if sample.shape[0] != n:
                sample = sample.reshape(n, sample.shape[0] // n, *p.shape).sum(1)
            sample = sample.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0).flatten(1)
            sq_norms += torch.linalg.vector_norm(sample, dim=1).double().cpu().pow(2)
            per_example.append(sample)
        norms = sq_norms.sqrt()
        ok = finite.cpu() & torch.isfinite(norms)
        factor = torch.where(ok, (clip / (norms + 1e-6)).clamp(max=1.0), 0.0).float()
        for total, sample in zip(sums, per_example, strict=True):
            total += (factor.to(sample.device) @ sample).view_as(total)
        return int((norms > clip).sum())

    # ------------------------------------------------------------ the step

    def step(
        self, lr: float | None = None, before_update: Callable[[GradientStep], None] | None = None
    ) -> GradientStep:
        """One step: rows, (clipped) gradient sums, the release, the log, the update."""
        rows, secret_rows = self.rows(self.step_index)
        return self._step(rows, secret_rows, lr, before_update)

    def step_rows(self, rows: np.ndarray, lr: float | None = None) -> GradientStep:
        """A step over the given rows, for ``paczero bench --compare``: the same work as a
        step whose sample is ``rows``, but not the sampling the accountant assumes."""
        return self._step(np.asarray(rows), True, lr, None)

    def _step(self, rows, secret_rows, lr, before_update) -> GradientStep:
        step = self.step_index
        lr = self.lr if lr is None else lr
        clip = self.mechanism.clip if self.per_example else None
        sums = self.gradient_sums(rows, clip)
        if not secret_rows and not math.isfinite(sums.loss):
            raise Diverged(step, "the loss became non-finite")
        ctx = StepContext(step, 0, rows, self.public, self.secret)
        release = self.mechanism.release_gradient(sums, ctx)
        result = GradientStep(
            step, lr, release.kind, sums.loss, rows, secret_rows, release.public, release.private
        )
        if before_update is not None:
            before_update(result)  # write-ahead: the release is durable before theta moves
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        for (_, p), grad in zip(self.params, release.grads, strict=True):
            p.grad = grad.to(p.dtype)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step_index += 1
        return result

    # ------------------------------------------------------------ checkpoints

    def named_state(self) -> list[tuple[str, torch.Tensor]]:
        """The optimizer's tensors (Adam's moments and step counts: functions of the
        released gradients, so public), named for a checkpoint beside the trainable ones."""
        out = []
        for name, p in self.params:
            for key, value in self.optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor):
                    out.append((f"{OPTIMIZER_PREFIX}{key}/{name}", value))
        return out

    def load_named_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what ``named_state`` saved (nothing saved: a fresh optimizer)."""
        for name, p in self.params:
            state = {}
            for key in ("momentum_buffer", "exp_avg", "exp_avg_sq", "step"):
                saved = tensors.get(f"{OPTIMIZER_PREFIX}{key}/{name}")
                if saved is not None:
                    state[key] = saved.clone()
            if state:
                self.optimizer.state[p] = state
