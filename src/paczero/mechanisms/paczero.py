"""PACZero-ZPL (zero mutual information) and PACZero-MI (a budget in nats, exact calibration).

Both compute the M candidate-subset signs s_j of one direction. ZPL releases the common sign
when all M agree and a public coin (or nothing) otherwise, so its output is a function of
public data only. MI keeps the attacker's posterior over the M candidates, releases the
secret subset's sign through a binary channel calibrated to the step's budget, and charges
exactly what the channel leaks (docs/algorithms.md 4, 5).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from paczero.mechanisms.base import Release, StepContext
from paczero.mechanisms.subsets import (
    SubsetKeys,
    SubsetMechanism,
    prepare_derivatives,
    subset_signs,
    subset_summary,
)
from paczero.privacy.channels import (
    biawgn_mi,
    binary_entropy,
    bsc_mi,
    calibrate_biawgn_sigma,
    calibrate_bsc_flip,
)
from paczero.privacy.posterior import (
    bsc_update,
    exact_update,
    gaussian_update,
    sign_log_masses,
    uniform_log_posterior,
)
from paczero.privacy.reports import PACReport, PrivacyReport
from paczero.values import Bool, Float

EXHAUSTED_RTOL = 1e-12  # budget left below B * this counts as spent


class ZPLConfig(SubsetKeys):
    name: Literal["paczero-zpl"] = "paczero-zpl"
    disagreement: Literal["coin", "skip"] = "coin"
    skip_all_zero: Bool = False


class MIConfig(SubsetKeys):
    name: Literal["paczero-mi"] = "paczero-mi"
    budget: Float | None = Field(None, gt=0)
    allocation: Literal["adaptive", "uniform"] = "adaptive"
    release: Literal["gaussian", "randomized-response"] = "gaussian"
    skip_all_zero: Bool = False

    def mi_budget(self) -> float | None:
        return self.budget

    @model_validator(mode="after")
    def _budget_protects(self) -> MIConfig:
        if self.budget is None:
            raise ValueError("paczero-mi needs a positive mechanism.budget (nats)")
        most = math.log(self.subsets)  # H(S*): no release reveals more about S*
        if not self.budget < most:
            raise ValueError(
                f"mechanism.budget ({self.budget:g} nats) is at least log M = log "
                f"{self.subsets} = {most:.4g} nats, the most any releases can reveal about "
                "the secret subset: it is no protection; use a smaller budget (the "
                "paper's are 0.33 and 0.68), or mechanism.name=mezo for a run without privacy"
            )
        return self


class _SubsetRelease(SubsetMechanism):
    """g -> clipped -> all M subset means -> signs; then the variant's ``release_signs``."""

    def release(self, g: np.ndarray, ctx: StepContext) -> Release:
        g = prepare_derivatives(g, ctx.indices, self.pool_size, self.clip)
        means, counts = self._subset_stats(g, ctx.indices)
        # "All means are zero" (a piecewise-constant objective such as -F1 that did not move)
        # is a function of all M candidates, never of S*: I = 0. The M signs then agree
        # only by the tie rule sign(0) = +1, which is no agreement: not counted unanimous.
        all_zero = not np.any(means)
        if self.skip_all_zero and all_zero:
            summary = subset_summary(subset_signs(means), counts, all_zero=True)
            return self._skip_all_zero(summary, ctx)
        return self.release_signs(subset_signs(means), ctx, counts=counts, all_zero=all_zero)

    def release_signs(
        self,
        signs: np.ndarray,
        ctx: StepContext,
        *,
        counts: np.ndarray | None = None,
        all_zero: bool = False,
    ) -> Release:
        raise NotImplementedError

    def _skip_all_zero(self, summary: dict[str, Any], ctx: StepContext) -> Release:
        return Release(0.0, "skip", 0.0, public={**summary, "skip_reason": "all-zero"})


def _as_signs(signs: np.ndarray, m: int) -> np.ndarray:
    signs = np.asarray(signs)
    if signs.shape != (m,) or not np.all(np.abs(signs) == 1):
        raise ValueError(f"expected {m} signs in {{-1, +1}}, got shape {signs.shape}")
    return signs.astype(np.int8)


def _counts(counts: np.ndarray | None, m: int) -> np.ndarray:
    return np.ones(m, dtype=np.int64) if counts is None else np.asarray(counts)


class PACZeroZPL(_SubsetRelease):
    """Zero privacy loss: the release never reads S*, so I(S*; releases) = 0 exactly.

    On unanimity the common sign equals s_{S*} for every candidate, so releasing it needs no
    secret. S* is still drawn at setup so a run states which subset it nominally trains on.
    """

    name = "paczero-zpl"
    Config = ZPLConfig
    family = "pac"
    kinds = ("unanimous", "coin", "skip")
    private = True

    @property
    def disagreement(self) -> str:
        return self.cfg.disagreement

    def release_signs(
        self,
        signs: np.ndarray,
        ctx: StepContext,
        *,
        counts: np.ndarray | None = None,
        all_zero: bool = False,
    ) -> Release:
        signs = _as_signs(signs, self.subsets)
        public = subset_summary(signs, _counts(counts, self.subsets), all_zero=all_zero)
        if public["unanimous"]:
            return Release(float(signs[0]), "unanimous", 0.0, public=public)
        if self.disagreement == "skip":
            public["skip_reason"] = "disagreement"
            return Release(0.0, "skip", 0.0, public=public)
        coin = ctx.public.generator("zpl-coin", ctx.step, ctx.direction).integers(2)
        return Release(1.0 if coin else -1.0, "coin", 0.0, public=public)

    def spent(self) -> dict[str, Any]:
        return {"charged": 0.0}

    def privacy_report(self) -> PrivacyReport:
        return PACReport.bound(0.0, charged=0.0, subsets=self.subsets)


def _check_leak(leak: float, charge: float) -> None:
    if not leak <= charge:
        raise RuntimeError(f"calibration overshoot: MI {leak!r} > charge {charge!r}")


class PACZeroMI(_SubsetRelease):
    """Budgeted MI: I(S*; everything released) <= ``cfg.budget`` = B nats.

    The posterior over S* is the attacker's: built from exactly what is published (the real
    value R for a Gaussian release, the bit for randomized response) and saved with the run.
    Each release is charged the binary channel's MI given q = P(s_{S*} = +1) under it, so by
    the chain rule I(S*; releases) is the expected sum of charges; every path's sum is kept
    <= B, hence I <= B. One run's sum is path-dependent: it is not the MI.
    """

    name = "paczero-mi"
    Config = MIConfig
    family = "pac"
    counts_steps = "its budget is allocated over the planned steps (B / T a step)"
    kinds = ("free", "noiseless", "noisy", "skip")
    private = True

    def configure(self) -> None:
        super().configure()
        cfg = self.cfg
        self.budget = float(cfg.budget)
        self.allocation = cfg.allocation
        self.channel = cfg.release
        self.used = 0.0
        self._log_post = uniform_log_posterior(self.subsets)
        self._budget_step: int | None = None  # the step whose budget beta_t is set
        self._step_budget = 0.0
        self._last: tuple[int, int] | None = None  # last (step, direction) released

    # ------------------------------------------------------------ budget

    @property
    def log_posterior(self) -> np.ndarray:
        return self._log_post.copy()

    @property
    def posterior(self) -> np.ndarray:
        return np.exp(self._log_post)

    @property
    def remaining(self) -> float:
        return max(self.budget - self.used, 0.0)

    @property
    def exhausted(self) -> bool:
        return self.used >= self.budget or self.budget - self.used <= self.budget * EXHAUSTED_RTOL

    def spent(self) -> dict[str, Any]:
        return {"charged": self.used, "budget": self.budget}

    def privacy_report(self) -> PrivacyReport:
        # The guarantee is the budget: I(S*; releases) = E[sum of charges] <= B because every
        # path's charges sum to at most B. This run's own sum depends on its path (adaptive
        # budgets, noiseless charges), so it is shown as what it is, never as the MI.
        return PACReport.bound(
            self.budget,
            charged=self.used,
            subsets=self.subsets,
            allocation=self.allocation,
            release=self.channel,
        )

    def _step_allocation(self, ctx: StepContext) -> float:
        """beta_t, fixed at direction 0 of each step and shared by its K releases."""
        if self._budget_step != ctx.step:
            if ctx.direction != 0:
                raise RuntimeError(
                    f"{self.name}: step {ctx.step} direction {ctx.direction} released before "
                    "direction 0 (the step budget is set at direction 0)"
                )
            if self.allocation == "uniform":
                beta = self.budget / self.steps
            else:
                beta = self.remaining / max(self.steps - ctx.step, 1)
            self._budget_step, self._step_budget = ctx.step, beta
        return self._step_budget

    def _release_budget(self, beta: float) -> float:
        """beta_t / K, capped so that ``used + budget <= B`` holds in floating point."""
        b = min(beta / self.directions, self.remaining)
        while b > 0.0 and self.used + b > self.budget:
            b = max(0.0, b - max(self.used + b - self.budget, math.ulp(b)))
        return b

    def _check_order(self, ctx: StepContext) -> None:
        # A repeated (step, direction) would reuse its noise draw while the posterior counts
        # it as fresh evidence: refuse instead of silently miscalibrating later steps.
        key = (int(ctx.step), int(ctx.direction))
        if self._last is not None and key <= self._last:
            raise RuntimeError(
                f"{self.name}: release for step {key[0]} direction {key[1]} after "
                f"step {self._last[0]} direction {self._last[1]}; each is released once, in order"
            )
        if not 0 <= key[1] < self.directions:
            raise ValueError(f"direction {key[1]} outside [0, {self.directions})")

    def _skip_all_zero(self, summary: dict[str, Any], ctx: StepContext) -> Release:
        self._check_order(ctx)
        beta = self._step_allocation(ctx)
        self._last = (int(ctx.step), int(ctx.direction))
        public = {**summary, "step_budget": beta, "skip_reason": "all-zero"}
        return Release(0.0, "skip", 0.0, public=public)

    # ------------------------------------------------------------ release

    def release_signs(
        self,
        signs: np.ndarray,
        ctx: StepContext,
        *,
        counts: np.ndarray | None = None,
        all_zero: bool = False,
    ) -> Release:
        signs = _as_signs(signs, self.subsets)
        self._check_order(ctx)
        secret_index = self._secret()
        beta = self._step_allocation(ctx)
        budget = self._release_budget(beta)
        lp, lm = sign_log_masses(self._log_post, signs)
        q, q_small = math.exp(lp), math.exp(min(lp, lm))  # the channels are symmetric in q
        entropy = binary_entropy(q_small)
        s = int(signs[secret_index])

        public = subset_summary(signs, _counts(counts, self.subsets), all_zero=all_zero)
        public.update(q=q, step_budget=beta, release_budget=budget)
        private: dict[str, Any] = {"secret_index": secret_index, "secret_sign": s}
        gaussian = self.channel == "gaussian"

        if entropy <= budget:
            # The sign is worth at most H_b(q) nats: release it as is and charge exactly that.
            # "free" when the posterior already knew it (q in {0, 1}: charge 0), else
            # "noiseless": it depends on S* and costs H_b(q) > 0.
            charge, coeff = entropy, float(s)
            kind = "free" if entropy == 0.0 else "noiseless"
            if entropy > 0.0:
                self._log_post = exact_update(self._log_post, signs, s)
            if gaussian:
                public.update(sigma=0.0, release_value=float(s))
                private["noise"] = 0.0
            else:
                public["flip_prob"] = 0.0
                private["flip"] = False
        elif budget <= 0.0:
            return self._skip_exhausted(public, private, ctx)
        elif gaussian:
            sigma = calibrate_biawgn_sigma(q_small, budget)
            if not 0.0 < sigma < math.inf:
                return self._skip_exhausted(public, private, ctx)
            _check_leak(biawgn_mi(q_small, sigma), budget)
            xi = float(ctx.secret.generator("mi-noise", ctx.step, ctx.direction).standard_normal())
            r = s + sigma * xi
            self._log_post = gaussian_update(self._log_post, signs, r, sigma)
            charge, coeff, kind = budget, (1.0 if r >= 0 else -1.0), "noisy"
            public.update(sigma=sigma, release_value=r)
            private["noise"] = xi
        else:
            rho = calibrate_bsc_flip(q_small, budget)
            if not 0.0 < rho <= 0.5:
                return self._skip_exhausted(public, private, ctx)
            _check_leak(bsc_mi(q_small, rho), budget)
            flip = bool(ctx.secret.generator("mi-flip", ctx.step, ctx.direction).random() < rho)
            y = -s if flip else s
            self._log_post = bsc_update(self._log_post, signs, y, rho)
            charge, coeff, kind = budget, float(y), "noisy"
            public["flip_prob"] = rho
            private["flip"] = flip

        self._charge(charge)
        self._last = (int(ctx.step), int(ctx.direction))
        return Release(coeff, kind, charge, public=public, private=private)

    def _skip_exhausted(
        self, public: dict[str, Any], private: dict[str, Any], ctx: StepContext
    ) -> Release:
        # Nothing left to spend on a disputed sign: withholding it depends on public facts only.
        self._last = (int(ctx.step), int(ctx.direction))
        public["skip_reason"] = "budget-exhausted"
        return Release(0.0, "skip", 0.0, public=public, private=private)

    def _charge(self, charge: float) -> None:
        # Checked explicitly, not with assert: the guarantee must hold under python -O too.
        used = self.used + charge
        if not (charge >= 0.0 and used <= self.budget):
            raise RuntimeError(f"budget overrun: {self.used!r} + {charge!r} > {self.budget!r}")
        self.used = used

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        log_post = [None if v == -math.inf else float(v) for v in self._log_post]
        return {
            **super().state_dict(),
            "budget": self.budget,
            "used": self.used,
            "allocation": self.allocation,
            "release": self.channel,
            "steps": self.steps,
            "directions": self.directions,
            "log_posterior": log_post,
            "budget_step": self._budget_step,
            "step_budget": self._step_budget,
            "last_release": list(self._last) if self._last is not None else None,
        }

    def load_state_dict(self, public: dict[str, Any], private: dict[str, Any]) -> None:
        if float(public["budget"]) != self.budget:
            raise ValueError(
                f"{self.name}: saved budget {public['budget']} != configured {self.budget}"
            )
        log_post = np.array(
            [-math.inf if v is None else float(v) for v in public["log_posterior"]],
            dtype=np.float64,
        )
        if log_post.shape != (self.subsets,):
            raise ValueError(f"{self.name}: saved posterior has {log_post.size} candidates")
        used = float(public["used"])
        if not 0.0 <= used <= self.budget:
            raise ValueError(f"{self.name}: saved spend {used} outside [0, {self.budget}]")
        super().load_state_dict(public, private)
        self._log_post = log_post
        self.used = used
        step = public.get("budget_step")
        self._budget_step = None if step is None else int(step)
        self._step_budget = float(public.get("step_budget", 0.0))
        last = public.get("last_release")
        self._last = None if last is None else (int(last[0]), int(last[1]))
