"""MeZO and the non-private ablations that decompose PACZero (docs/algorithms.md 1.1, 3).

None of these carries a guarantee: they release gradient information without noise or
accounting. The ablations isolate one ingredient each (clipping, sign quantisation, the
half-size secret subset, the coin) so the paper's "mechanism decomposition" table can be
reproduced. Values that depend on the secret subset go only to ``Release.private``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from paczero.mechanisms.base import Mechanism, MechanismSection, Release, StepContext
from paczero.mechanisms.subsets import (
    SubsetKeys,
    SubsetMechanism,
    prepare_derivatives,
    subset_signs,
    subset_summary,
)
from paczero.values import Bool, Float


class MeZOConfig(MechanismSection):
    """MeZO reads no key but its name: it neither clips nor skips."""

    name: Literal["mezo"] = "mezo"


class FullBatchConfig(MechanismSection):
    name: Literal["full-mean", "full-sign", "random-sign"]
    clip: Float | None = Field(None, gt=0)
    skip_all_zero: Bool = False

    def derivative_clip(self) -> float | None:
        return self.clip


class SecretSubsetConfig(SubsetKeys):
    name: Literal["secret-mean", "secret-sign"]
    skip_all_zero: Bool = False


def _sign(x: float) -> float:
    return 1.0 if x >= 0 else -1.0  # ties read +1, as for subset signs


def _mean(g: np.ndarray) -> float:
    return float(g.mean()) if g.size else 0.0


class _FullBatch(Mechanism):
    """Shared by mechanisms that read the whole batch, not the candidate subsets."""

    name = "full-batch"
    Config = FullBatchConfig
    private = False
    clips = True

    def configure(self) -> None:
        self.clip = self.cfg.clip if self.clips else None
        self.skip_all_zero = bool(self.cfg.skip_all_zero) if self.clips else False

    def release(self, g: np.ndarray, ctx: StepContext) -> Release:
        g = prepare_derivatives(g, ctx.indices, self.pool_size, self.clip)
        mean = _mean(g)
        if self.skip_all_zero and not np.any(g):
            return Release(0.0, "skip", public={"mean": mean, "skip_reason": "all-zero"})
        return Release(self._coeff(mean, ctx), "nonprivate", public={"mean": mean})

    def _coeff(self, mean: float, ctx: StepContext) -> float:
        raise NotImplementedError


class MeZO(_FullBatch):
    """The non-private baseline: the plain SPSA coefficient, mean of g (no clipping)."""

    name = "mezo"
    Config = MeZOConfig
    clips = False

    def _coeff(self, mean: float, ctx: StepContext) -> float:
        return mean


class FullMean(_FullBatch):
    """Mean of the clipped g over the whole batch (the paper's in-house MeZO reference)."""

    name = "full-mean"

    def _coeff(self, mean: float, ctx: StepContext) -> float:
        return mean


class FullSign(_FullBatch):
    """Sign of the full-batch mean: sign quantisation without subsets."""

    name = "full-sign"

    def _coeff(self, mean: float, ctx: StepContext) -> float:
        return _sign(mean)


class RandomSign(_FullBatch):
    """A fair public coin, independent of g: the negative control."""

    name = "random-sign"

    def _coeff(self, mean: float, ctx: StepContext) -> float:
        coin = ctx.public.generator("random-sign", ctx.step, ctx.direction).integers(2)
        return 1.0 if coin else -1.0


class _SecretSubset(SubsetMechanism):
    """Reads the secret subset S* without protection; S*-dependent values stay private."""

    Config = SecretSubsetConfig
    private = False

    def release(self, g: np.ndarray, ctx: StepContext) -> Release:
        g = prepare_derivatives(g, ctx.indices, self.pool_size, self.clip)
        means, counts = self._subset_stats(g, ctx.indices)
        signs = subset_signs(means)
        summary = subset_summary(signs, counts, all_zero=not np.any(means))
        public: dict[str, Any] = {**summary, "mean": _mean(g)}
        if self.skip_all_zero and not np.any(means):
            public["skip_reason"] = "all-zero"
            return Release(0.0, "skip", public=public)
        index = self._secret()
        secret_mean = float(means[index])
        private = {
            "secret_index": index,
            "secret_mean": secret_mean,
            "secret_sign": int(signs[index]),
        }
        return Release(self._coeff(secret_mean), "nonprivate", public=public, private=private)

    def _coeff(self, secret_mean: float) -> float:
        raise NotImplementedError


class SecretMean(_SecretSubset):
    """Mean of the clipped g over S*'s subset: the half-size data without quantisation."""

    name = "secret-mean"
    reveals = "mean"

    def _coeff(self, secret_mean: float) -> float:
        return secret_mean


class SecretSign(_SecretSubset):
    """s_{S*} released as is: PACZero's release with the privacy removed."""

    name = "secret-sign"
    reveals = "sign"

    def _coeff(self, secret_mean: float) -> float:
        return _sign(secret_mean)
