"""The first-order baselines: DP-SGD and plain backpropagation (docs/algorithms.md 7.7).

They release a whole mean gradient per step, not a coefficient of a public direction, so
they run through ``paczero.engine.firstorder.FirstOrderOptimizer`` instead of the zeroth-order
estimator; everything else (config, data, splits, evaluation, run directory, report) is
shared.

``dp-sgd`` (Abadi et al. 2016, as Opacus runs it): each step Poisson-samples the pool at
q = expected_batch / N from the SECRET stream, clips each example's whole gradient to L2
norm C, sums, adds N(0, (mu C)^2) to every coordinate from a torch generator keyed by
(step, tensor) in the secret stream, and divides by the public expected batch. Under
add-or-remove-one the clipped sum has L2 sensitivity C, so the accountant is DPZero's:
T Poisson-subsampled Gaussian steps with multiplier mu, calibrated here before any forward
pass. ``backprop`` is the non-private mean gradient over a public minibatch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from paczero.mechanisms.base import Mechanism, MechanismSection, StepContext
from paczero.mechanisms.dp import _DPMechanism
from paczero.privacy.reports import PrivacyReport
from paczero.values import LOG2, Float, Int

MISSING_OPACUS = "dp-sgd needs Opacus, an optional extra: pip install paczero[dpsgd]"
Optimizer = Literal["sgd", "adam"]  # the torch optimizer the released gradient feeds


class BackpropConfig(MechanismSection):
    name: Literal["backprop"] = "backprop"
    optimizer: Optimizer = "sgd"


class DPSGDConfig(MechanismSection):
    """DP-SGD's keys: DPZero's target, clip, Poisson rate and accountant, and the optimizer.
    Gaussian noise over the expected batch only (no Laplace, no noisy count)."""

    name: Literal["dp-sgd"] = "dp-sgd"
    clip: Float | None = Field(None, gt=0)
    epsilon: Float | None = Field(None, gt=0)
    match_mi: Float | None = Field(None, gt=0, lt=LOG2)
    delta: Float = Field(1e-5, gt=0, lt=1)
    expected_batch: Int | None = Field(None, ge=1)
    accountant: Literal["pld", "rdp", "opacus-rdp"] = "pld"
    optimizer: Optimizer = "sgd"
    # what the shared DP code reads, fixed for DP-SGD (not keys)
    noise: ClassVar[str] = "gaussian"
    denominator: ClassVar[str] = "expected"
    count_fraction: ClassVar[float] = 0.0
    sensitivity: ClassVar[str] = "add-remove"

    @model_validator(mode="after")
    def _complete(self) -> DPSGDConfig:
        if (self.epsilon is None) == (self.match_mi is None):
            raise ValueError("dp-sgd needs one target: mechanism.epsilon or mechanism.match_mi")
        for key in ("clip", "expected_batch"):
            if getattr(self, key) is None:
                raise ValueError(f"mechanism.{key} is required for dp-sgd")
        return self


WHOLE_GRADIENTS = (
    "Each step releases a whole noisy gradient (every coordinate of every trainable tensor), "
    "not one coefficient of a public direction: the DP guarantee covers it, and the model "
    "(and the optimizer's state) is post-processing of these releases."
)


@dataclass
class GradientRelease:
    grads: list[torch.Tensor]  # the released mean gradient, one tensor per trainable tensor
    kind: str
    public: dict[str, Any] = field(default_factory=dict)
    private: dict[str, Any] = field(default_factory=dict)


class _FirstOrder(Mechanism):
    """What the first-order mechanisms share: a whole-gradient release, one per step."""

    first_order = True
    replayable = False  # a whole gradient is not a coefficient of a public direction
    per_example: ClassVar[bool] = False  # dp-sgd: per-example gradients (Opacus), clipped
    clip: float | None = None  # dp-sgd: the L2 bound C of each per-example gradient

    @classmethod
    def check_run(cls, cfg: Any) -> None:
        """Cross-section rules (ValueError naming the key): a gradient needs a
        differentiable loss, and the clip is per row."""
        if cfg.task.objective != "ce":
            raise ValueError(
                f"{cls.name} backpropagates the loss: task.objective {cfg.task.objective} has "
                "no gradient; use ce"
            )
        if cfg.data.group_field is not None:
            raise ValueError(
                f"{cls.name} takes one gradient per row: data.group_field (user-level units) "
                "is for the zeroth-order mechanisms"
            )

    def release(self, g, ctx):  # pragma: no cover - the zeroth-order seam does not apply
        raise TypeError(f"{self.name} is first-order: it releases gradients, not coefficients")

    def release_gradient(self, sums: Any, ctx: StepContext) -> GradientRelease:
        raise NotImplementedError


class Backprop(_FirstOrder):
    """Plain mini-batch backpropagation: the mean gradient over public rows, no privacy."""

    name = "backprop"
    Config = BackpropConfig
    kinds = ("backprop",)

    def release_gradient(self, sums: Any, ctx: StepContext) -> GradientRelease:
        n = max(sums.count, 1)
        return GradientRelease([s / n for s in sums.sums], "backprop")

    def privacy_report(self) -> PrivacyReport:
        return super().privacy_report().updated(released="gradients")


class DPSGD(_FirstOrder, _DPMechanism):
    """DP-SGD: Poisson sample (secret), per-example clipping, Gaussian noise (secret)."""

    name = "dp-sgd"
    Config = DPSGDConfig
    kinds = ("dp-sgd",)
    per_example = True

    frozen: tuple[str, ...] = ()  # set by the optimizer: layers Opacus cannot clip per example

    @classmethod
    def check_run(cls, cfg: Any) -> None:
        super().check_run(cfg)
        if importlib.util.find_spec("opacus") is None:  # before any model loads
            raise ValueError(MISSING_OPACUS)

    def _sensitivity(self) -> float:
        return self.clip  # L2 of the sum of per-example gradients clipped to norm C

    def _sensitivity_text(self) -> str:
        return (
            f"C = {self.clip:g} (L2) of the sum of per-example gradients, each clipped to L2 "
            "norm C over all trainable tensors together"
        )

    def _coefficient_std(self) -> float:
        return self.noise_scale / self.expected_batch  # per coordinate of the mean gradient

    def gradient_noise(self, step: int, index: int, like: torch.Tensor) -> torch.Tensor:
        """N(0, (mu C)^2) for every coordinate of trainable tensor ``index`` at ``step``,
        from a torch generator keyed by (step, tensor) in the secret stream."""
        gen = torch.Generator(device=like.device)
        gen.manual_seed(self._stream().seed("dp-sgd-noise", step, index))
        draw = torch.randn(like.shape, generator=gen, device=like.device, dtype=torch.float32)
        return draw * self.noise_scale

    def release_gradient(self, sums: Any, ctx: StepContext) -> GradientRelease:
        """(sum of clipped per-example gradients + noise) / expected batch, per tensor."""
        divisor = self.divisor
        noisy, noise_sq = [], 0.0
        for index, total in enumerate(sums.sums):
            noise = self.gradient_noise(ctx.step, index, total)
            noise_sq += float(noise.double().pow(2).sum())
            noisy.append((total + noise) / divisor)
        self.steps_done = max(self.steps_done, ctx.step + 1)
        private = {
            "batch_size": int(sums.count),
            "clipped": int(sums.clipped),
            "clean_norm": float(torch.sqrt(sum(s.double().pow(2).sum() for s in sums.sums)))
            / divisor,
            "noise_norm": noise_sq**0.5 / divisor,
        }
        return GradientRelease(noisy, "dp-sgd", public={}, private=private)

    def privacy_report(self) -> PrivacyReport:
        report = super().privacy_report().to_json()
        report["released"] = "gradients"
        report["release_note"] = WHOLE_GRADIENTS
        report["noise_std_of_gradient"] = report.pop("noise_std_of_coefficient")
        report["frozen_layers"] = list(self.frozen)
        report["frozen_note"] = frozen_note(self.frozen)
        return PrivacyReport.from_json(report)


def frozen_note(frozen: tuple[str, ...] | list[str]) -> str | None:
    if not frozen:
        return None
    shown = ", ".join(frozen[:3]) + (", ..." if len(frozen) > 3 else "")
    return (
        f"{len(frozen)} trainable tensors of layers Opacus has no per-example gradient for "
        f"({shown}) were frozen at their initial values for dp-sgd"
    )


__all__ = [
    "DPSGD",
    "MISSING_OPACUS",
    "WHOLE_GRADIENTS",
    "Backprop",
    "BackpropConfig",
    "DPSGDConfig",
    "GradientRelease",
]
