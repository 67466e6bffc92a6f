"""The DP zeroth-order baselines: DPZero, DP-ZO and DP-AggZO (docs/algorithms.md 7).

All three Poisson-sample the pool at a public rate q from the SECRET stream (amplification
needs the sample to be hidden), clip each example's contribution, sum, add noise drawn from
the secret stream keyed by (step, direction), and divide by a public denominator. The
accountant (privacy/accounting.py) is calibrated in ``__init__``, so an unreachable target
fails before any forward pass. Neighbouring relation (``mechanism.sensitivity``):
add-or-remove-one record (the default; the sum of clipped values then has sensitivity C: L2
C*sqrt(K) or L1 C*K for K scalar releases of the same sample, C*K for DP-AggZO's clipped
K-vector) or replace-one (twice that, as the DPZero paper's 2C/b on the mean), so the noise
std is the multiplier times the sensitivity. Only the noised coefficient is public.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from paczero.errors import UserError
from paczero.mechanisms.base import Mechanism, MechanismSection, Release, StepContext
from paczero.privacy.accounting import NEIGHBOURING, DPAccountant
from paczero.privacy.bounds import (
    mi_to_epsilon,
)
from paczero.privacy.randomness import RandomStream
from paczero.privacy.reports import DPReport, PrivacyReport
from paczero.progress import waiting
from paczero.values import LOG2, Float, Int

LAPLACE_NAMES = ("dpzo",)  # the mechanisms that accept mechanism.noise=laplace
# mechanism.sensitivity -> the relation the report states, the factor on the sensitivity
# and what the report adds: dp-accounting has no replace-one analysis of Poisson-subsampled
# steps, so epsilon stays the accountant's at the same multiplier, as the DPZero paper's.
RELATIONS = {
    "add-remove": (NEIGHBOURING, 1, ""),
    "replace-one": (
        "replace-one",
        2,
        "; epsilon from the add-or-remove-one accounting of the same noise multiplier "
        "(the DPZero paper's calibration)",
    ),
}


class DPConfig(MechanismSection):
    """The DP baselines' keys; delta 0 is only for dpzo's pure-DP Laplace noise."""

    name: Literal["dpzero", "dpzo", "dpaggzo"]
    clip: Float | None = Field(None, gt=0)
    epsilon: Float | None = Field(None, gt=0)
    delta: Float = Field(1e-5, ge=0, lt=1)
    expected_batch: Int | None = Field(None, ge=1)
    noise: Literal["gaussian", "laplace"] = "gaussian"
    denominator: Literal["expected", "noisy-count"] = "expected"
    count_fraction: Float = Field(0.05, gt=0, lt=1)
    accountant: Literal["pld", "rdp", "opacus-rdp"] = "pld"
    sensitivity: Literal["add-remove", "replace-one"] = "add-remove"
    match_mi: Float | None = Field(None, gt=0, lt=LOG2)

    def derivative_clip(self) -> float | None:
        return self.clip

    @model_validator(mode="after")
    def _complete(self) -> DPConfig:
        name = self.name
        if self.epsilon is None and self.match_mi is None:
            raise ValueError(
                f"{name} needs a target: set mechanism.epsilon or mechanism.match_mi (nats)"
            )
        if self.epsilon is not None and self.match_mi is not None:
            raise ValueError("set only one of mechanism.epsilon and mechanism.match_mi")
        if self.clip is None:
            raise ValueError(f"mechanism.clip (C) is required for {name}")
        if self.expected_batch is None:
            raise ValueError(
                f"mechanism.expected_batch is required for {name} "
                "(Poisson rate q = expected_batch / data.num_train)"
            )
        if self.noise == "laplace" and name not in LAPLACE_NAMES:
            raise ValueError(f"mechanism.noise {self.noise} is only for dpzo, not {name}")
        if self.delta == 0 and self.noise != "laplace":
            raise ValueError("mechanism.delta must be in (0, 1) for Gaussian noise, got 0")
        if self.noise == "laplace" and self.accountant in ("rdp", "opacus-rdp") and self.delta > 0:
            raise ValueError("mechanism.accountant rdp has no subsampled Laplace; use pld")
        return self


class _LazySpent(Mapping):
    """{"epsilon", "delta"} whose epsilon is computed on first read.

    The trainer asks ``spent()`` every step and the schedule, filled in the background from
    the start, answers it; beyond it (never, in a run that stops at its planned steps) the
    accountant does.
    """

    def __init__(self, accountant: DPAccountant, steps: int):
        self._accountant, self._steps = accountant, steps

    def __getitem__(self, key: str) -> float:
        if key == "epsilon":
            return self._accountant.epsilon(self._steps)
        if key == "delta":
            return self._accountant.delta
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in ("epsilon", "delta")

    def __iter__(self) -> Iterator[str]:
        return iter(("epsilon", "delta"))

    def __len__(self) -> int:
        return 2


class _DPMechanism(Mechanism):
    """Poisson sampling, calibration, accounting and state shared by the DP baselines."""

    name = "dp"
    Config = DPConfig
    family = "dp"
    counts_steps = "its noise is calibrated to the epsilon target over the planned steps"
    kinds = ("dp",)
    private = True
    chooses_rows = True  # Poisson sampling from the secret stream
    joint = False  # DP-AggZO clips each example's K-vector jointly

    @classmethod
    def check_config(cls, cfg: DPConfig, *, pool_size: int, steps: int, directions: int) -> None:
        super().check_config(cfg, pool_size=pool_size, steps=steps, directions=directions)
        if cfg.expected_batch > pool_size:
            raise ValueError(
                f"mechanism.expected_batch ({cfg.expected_batch}) is larger than the pool "
                f"data.num_train ({pool_size}): the Poisson sample rate would exceed 1"
            )

    def configure(self) -> None:
        c, pool_size, steps = self.cfg, self.pool_size, self.steps
        self.noise = c.noise
        delta = 0.0 if self.noise == "laplace" and c.delta == 0 else float(c.delta)
        try:
            target = float(c.epsilon) if c.epsilon is not None else mi_to_epsilon(c.match_mi, delta)
        except ValueError as err:
            raise UserError(f"{self.name}: {err}") from None
        self.clip = float(c.clip)
        self.expected_batch = int(c.expected_batch)
        self.sample_rate = self.expected_batch / pool_size
        self.denominator = c.denominator
        count_eps = c.count_fraction * target if self.denominator == "noisy-count" else 0.0
        try:
            what = f"{self.name}: calibrating the noise to epsilon {target:.4g} over {steps} steps"
            with waiting(what, clock=False):  # minutes for long runs: say so, but no clock
                self.accountant = DPAccountant.calibrate(
                    target,
                    delta,
                    self.sample_rate,
                    steps,
                    accountant=c.accountant,
                    noise=self.noise,
                    count_epsilon=count_eps,
                )
            self.accountant.prepare()  # in the background, so that no step composes a PLD
        except ValueError as err:
            raise UserError(f"{self.name}: {err}") from None
        self.relation, self.factor, self._relation_note = RELATIONS[c.sensitivity]
        self.sensitivity = self.factor * self._sensitivity()
        self.noise_scale = self.accountant.noise_multiplier * self.sensitivity  # of the sum
        self.steps_done = 0
        self.noisy_count: float | None = None  # only for the noisy-count denominator
        self._secret: RandomStream | None = None

    # ---------------------------------------------------------- pieces per mechanism

    def _sensitivity(self) -> float:
        """Of the K sums released per step under add-or-remove, in the norm the noise is
        calibrated for (replace-one doubles it)."""
        k = self.directions
        return self.clip * (math.sqrt(k) if self.noise == "gaussian" else k)

    # ---------------------------------------------------------- run

    def setup(self, public: RandomStream, secret: RandomStream) -> None:
        self._secret = secret
        if self.denominator == "noisy-count" and self.noisy_count is None:
            scale = 1.0 / self.accountant.count_epsilon
            count = self.pool_size + secret.generator("dp-count").laplace(0.0, scale)
            self.noisy_count = float(count)

    @property
    def divisor(self) -> float:
        """The public (or DP-released) batch-size estimate that divides the noisy sum."""
        if self.denominator == "expected":
            return float(self.expected_batch)
        if self.noisy_count is None:
            raise RuntimeError("setup() draws the noisy count; call it first")
        return max(self.noisy_count * self.sample_rate, 1.0)  # post-processing: still DP

    def batch(self, step: int) -> np.ndarray:
        return poisson_sample(self._stream(), step, self.pool_size, self.sample_rate)

    def _stream(self) -> RandomStream:
        if self._secret is None:
            raise RuntimeError("setup() stores the secret stream; call it first")
        return self._secret

    def _noise(self, step: int, direction: int) -> float:
        rng = self._stream().generator("dp-noise", step, direction)
        if self.noise == "gaussian":
            return float(rng.normal(0.0, self.noise_scale))
        return float(rng.laplace(0.0, self.noise_scale))

    def release(self, g: np.ndarray, ctx: StepContext) -> Release:
        """One direction: clip each g_i to [-C, C], sum, add noise, divide."""
        g = np.asarray(g, dtype=np.float64)
        clipped = np.clip(g, -self.clip, self.clip)
        total = float(clipped.sum())
        noise = self._noise(ctx.step, ctx.direction)
        divisor = self.divisor
        private = {
            "batch_size": int(g.size),
            "clean": total / divisor,
            "noise": noise / divisor,
            "clipped": int(np.count_nonzero(np.abs(g) > self.clip)),
        }
        return Release((total + noise) / divisor, "dp", public={}, private=private)

    def release_step(self, derivatives: np.ndarray, ctx: StepContext) -> list[Release]:
        derivatives = np.atleast_2d(np.asarray(derivatives, dtype=np.float64))
        if self.joint:
            out = self._release_joint(derivatives, ctx)
        else:
            out = [self.release(g, replace(ctx, direction=k)) for k, g in enumerate(derivatives)]
        self.steps_done = max(self.steps_done, ctx.step + 1)
        return out

    def _release_joint(self, derivatives: np.ndarray, ctx: StepContext) -> list[Release]:
        raise NotImplementedError

    # ---------------------------------------------------------- accounting and report

    @property
    def exhausted(self) -> bool:
        return self.steps_done >= self.steps

    def spent(self) -> Mapping[str, float]:
        return _LazySpent(self.accountant, self.steps_done)

    def privacy_report(self) -> PrivacyReport:
        acc = self.accountant
        delta, method = acc.delta, acc.method
        return DPReport.spending(
            epsilon=float(self.spent()["epsilon"]),
            delta=delta,
            budget=DPReport.target(
                epsilon=acc.target_epsilon, delta=delta, match_mi=self.cfg.match_mi
            ),
            accountant=method,
            accountant_note=_ACCOUNTANT_NOTES[method],
            neighbouring_relation=(
                f"{self.relation}; sensitivity {self._sensitivity_text()}{self._relation_note}"
            ),
            noise=self.noise,
            noise_multiplier=acc.noise_multiplier,
            noise_std_of_coefficient=self._coefficient_std(),
            sample_rate=self.sample_rate,
            sampling="Poisson, from the secret stream",
            expected_batch=self.expected_batch,
            clip=self.clip,
            denominator=self.denominator,
            count_epsilon=acc.count_epsilon,
            steps_planned=self.steps,
        )

    def _sensitivity_text(self) -> str:
        k = self.directions
        if k == 1:
            c = "C" if self.factor == 1 else f"{self.factor}C"
            return f"{c} = {self.sensitivity:g} of the clipped sum"
        norm = "L2" if self.noise == "gaussian" else "L1"
        return f"{self.sensitivity:g} ({norm}) of the K = {k} clipped sums (C = {self.clip:g})"

    def _coefficient_std(self) -> float:
        std = self.noise_scale * (1.0 if self.noise == "gaussian" else math.sqrt(2.0))
        return std / (self.expected_batch if self.denominator == "expected" else self.divisor)

    def state_dict(self) -> dict[str, Any]:
        return {"steps_done": self.steps_done, "accountant": self.accountant.state_dict()}

    def private_state_dict(self) -> dict[str, Any]:
        return {"noisy_count": self.noisy_count}

    def load_state_dict(self, public: dict[str, Any], private: dict[str, Any]) -> None:
        saved = DPAccountant.from_state_dict(public["accountant"])
        if saved.state_dict() != self.accountant.state_dict():
            raise UserError(
                f"{self.name}: the checkpoint was calibrated differently "
                f"(noise multiplier {saved.noise_multiplier:g}, this run "
                f"{self.accountant.noise_multiplier:g}); resume with the same config"
            )
        self.steps_done = int(public["steps_done"])
        self.noisy_count = private.get("noisy_count")
        self.accountant.prepare(start=self.steps_done + 1)  # the schedule from the next step


_ACCOUNTANT_NOTES = {
    "pld": "dp_accounting PLDAccountant (privacy loss distributions, pessimistic estimate): "
    "the tightest of the library's accountants for Poisson-subsampled Gaussian steps",
    "rdp": "dp_accounting RdpAccountant (Renyi DP, as in Opacus): looser than PLD",
    "opacus-rdp": "RDP with Opacus's orders and Opacus's get_noise_multiplier search, as the "
    "published DP baselines were calibrated (dp_accounting RdpAccountant at Opacus 1.4's "
    "orders; the Gaussian steps get epsilon minus the noisy count's epsilon, the count is "
    "added by basic composition): 5-20% more noise than PLD at the same epsilon",
    "pure-dp": "pure epsilon-DP: Poisson amplification log(1 + q(e^eps0 - 1)) per step, "
    "composed additively (Laplace noise, delta = 0)",
}


def poisson_sample(
    stream: RandomStream, step: int, pool_size: int, sample_rate: float
) -> np.ndarray:
    """Each pool row independently with probability q; keyed by the step, never reused."""
    keep = stream.generator("poisson", step).random(pool_size) < sample_rate
    return np.flatnonzero(keep)


class DPZero(_DPMechanism):
    """DPZero (Zhang et al. 2024): clipped scalar SPSA derivatives, Gaussian noise."""

    name = "dpzero"


class DPZO(_DPMechanism):
    """DP-ZO (Tang et al. 2024): DPZero's scalar privatisation, Gaussian or Laplace noise."""

    name = "dpzo"


class DPAggZO(_DPMechanism):
    """DP-AggZO: each example's K derivatives clipped as one vector, noised jointly.

    As in the paper, v_i = d_i / K is clipped to L2 norm C and the coefficient of direction
    k is K * (sum_i v_ik + N(0, (mu C)^2)) / n, because the optimiser averages the K
    coefficients: the update is then sum_k g_k z_k with g the paper's noisy mean.
    """

    name = "dpaggzo"
    joint = True

    def _sensitivity(self) -> float:
        return self.clip * self.directions  # L2 norm of the sum of clipped d_i (= K * C on v_i)

    def _release_joint(self, derivatives: np.ndarray, ctx: StepContext) -> list[Release]:
        k, n = derivatives.shape
        bound = self.clip * k
        norms = np.linalg.norm(derivatives, axis=0)  # one L2 norm per example
        scale = np.minimum(1.0, bound / np.maximum(norms, 1e-300))
        totals = (derivatives * scale).sum(axis=1)
        divisor = self.divisor
        clipped = int(np.count_nonzero(norms > bound))
        out = []
        for j in range(k):
            noise = self._noise(ctx.step, j)
            private = {
                "batch_size": int(n),
                "clean": float(totals[j]) / divisor,
                "noise": noise / divisor,
                "clipped": clipped,
            }
            coeff = (float(totals[j]) + noise) / divisor
            out.append(Release(coeff, "dp", public={}, private=private))
        return out

    def _sensitivity_text(self) -> str:
        return (
            f"L2 {self.sensitivity:g} of the sum of per-example K-vectors d_i "
            f"(v_i = d_i / K clipped to C = {self.clip:g}, K = {self.directions})"
        )


__all__ = ["DPAggZO", "DPZO", "DPZero", "poisson_sample"]
