"""PACZero's reports: a bound on I(S*; releases), zero (``ZeroLeakReport``) or a budget of B
nats (``MIBudgetReport``), stated from the configured budget."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from paczero.guarantee import a_or_an, fmt
from paczero.privacy.bounds import (
    fano_bound,
    identification_bound,
    mi_to_epsilon,
    mi_to_posterior_bound,
)
from paczero.privacy.reports.base import PrivacyReport


class PACReport(PrivacyReport):
    """PACZero: a bound on I(S*; releases), the MI between the secret subset and everything
    released, stated from the configured budget (never from one run's path)."""

    framework: ClassVar[str] = "pac"
    GUARANTEE: ClassVar[str] = (
        "The bound covers membership of a pool {one} in the secret subset S* (the half of the "
        "pool the model was trained on) against an attacker who knows the pool, the "
        "candidate subsets and every public release; it is not a guarantee for the pool "
        "against the outside world."
    )
    TAGS: ClassVar[tuple[str, ...]] = ("pac-privacy",)

    budget: float = 0.0
    mi_bound: float = 0.0
    spent: dict[str, float] = Field(default_factory=dict)
    posterior_bound: float = 0.5
    matched_epsilon: float = 0.0
    subsets: int | None = None

    @classmethod
    def bound(cls, mi_bound: float, *, charged: float, subsets: int, **extra: Any) -> Any:
        """The section of a PAC mechanism whose guarantee is I(S*; releases) <= mi_bound
        (0: the zero-leak class), with the charges summed on this run's path."""
        kind = ZeroLeakReport if mi_bound == 0.0 else MIBudgetReport
        return kind.section(
            budget=mi_bound,
            mi_bound=mi_bound,
            spent={"mi_bound": mi_bound, "charged": charged},
            posterior_bound=mi_to_posterior_bound(mi_bound),
            matched_epsilon=mi_to_epsilon(mi_bound),
            subsets=subsets,
            guarantee=cls.GUARANTEE.format(one="example"),
            **extra,
        )

    def _report_lines(self) -> list[str]:
        lines = self._bound_lines()
        lines.append(
            f"  membership-inference success bound: {self.posterior_bound:.4f} (prior 0.5); "
            f"matched DP epsilon: {self.matched_epsilon:.3g}"
        )
        lines.append(f"  {self.guarantee}")
        lines += self._data_lines()
        lines.append(f"  secret source: {self.secret_source}")
        return lines

    def _bound_lines(self) -> list[str]:
        raise NotImplementedError

    def _lead(self, pool: int | None) -> str:
        many = self._unit()[1]
        size = f" ({pool} {many})" if pool else ""
        return (
            f"The private pool{size} was split at random into candidate halves and one half, "
            "S*, was secretly chosen for training; the candidate halves are public."
        )

    def protects(self, example: str) -> str | None:
        return (
            f"membership of each {example} in the secret training half S*, against an "
            "attacker who knows the pool and the candidate halves"
        )

    def _family_rows(self) -> list[tuple[str, Any]]:
        return [
            ("guarantee", self._guarantee_row()),
            ("budget", f"{fmt(self.budget, 'g')} nats"),
            ("MI bound", f"{fmt(self.mi_bound, 'g')} nats"),
            ("membership-inference bound", fmt(self.posterior_bound)),
            ("matched DP epsilon", fmt(self.matched_epsilon, ".3g")),
            ("candidate subsets M", self.subsets),
        ]

    def _guarantee_row(self) -> str:
        raise NotImplementedError

    def headline(self) -> tuple[float | None, float | None]:
        return self.mi_bound, self.matched_epsilon

    def curve(self, records: list[Any]) -> dict[str, Any] | None:
        if not records:
            return None
        return {
            "kind": "mi",
            "values": [float(r.cumulative) for r in records],
            "label": "MI charged on this path (not the MI)",
            "axis": "MI, nats",
            "limit": float(self.mi_bound),
            "limit_label": self._limit_label(),
        }

    def _limit_label(self) -> str:
        raise NotImplementedError

    def spent_on(self, records: list[Any]) -> PrivacyReport:
        if not records:
            return self
        return self.updated(spent={**self.spent, "charged": records[-1].cumulative})

    def claim(self) -> dict[str, Any] | None:
        """What I(S*; releases) <= mi_bound promises an attacker facing the M candidates."""
        mi, m = float(self.mi_bound), int(self.subsets or 0)
        return {
            "framework": "pac",
            "mi_bound": mi,
            "posterior_bound": mi_to_posterior_bound(mi),
            "epsilon": mi_to_epsilon(mi),  # the matched epsilon
            "epsilon_kind": "matched",
            "identify_bound": identification_bound(mi, m),
            "fano_bound": fano_bound(mi, m),
            "candidates": m,
        }


class ZeroLeakReport(PACReport):
    """PACZero-ZPL: I(S*; releases) = 0, the releases are independent of S*."""

    def _bound_lines(self) -> list[str]:
        one = self._unit()[0]
        return [
            "  mutual information: I(S*; releases) = 0 nats",
            "  I = 0: the released updates are independent of which candidate subset was "
            f"used, so no attacker does better than the prior 0.5 at telling whether "
            f"{a_or_an(one)} {one} was in it.",
        ]

    def plain_words(self, pool: int | None) -> str:
        one = self._unit()[0]
        return (
            f"{self._lead(pool)} The released updates, and so this model, are exactly as "
            "likely whichever half was chosen: I(S*; releases) = 0. Nobody, even knowing "
            f"every pool {one} and every candidate half, can tell better than a coin flip "
            f"(0.5) whether {a_or_an(one)} {one} was in the training half."
        )

    def demo_words(self) -> list[str]:
        return [
            "In plain words: the pool was split at random into candidate halves and one half",
            "was secretly chosen for training. The model's updates are exactly as likely",
            "whichever half was chosen, so nobody (even knowing every pool sentence and every",
            "candidate half) can tell better than a coin flip whether a sentence was in the",
            "training half. It does not hide that the pool as a whole shaped the model.",
        ]

    def _guarantee_row(self) -> str:
        return "I(S*; releases) = 0"

    def _limit_label(self) -> str:
        return "I = 0 (ZPL)"


class MIBudgetReport(PACReport):
    """PACZero-MI and any PAC mechanism with a budget: I(S*; releases) <= B nats, because
    every path's charges sum to at most B and the MI is their expectation."""

    def _bound_lines(self) -> list[str]:
        bound, charged = self.mi_bound, self.spent["charged"]
        return [
            f"  mutual information bound: I(S*; releases) <= {bound:g} nats, the budget "
            "(every path's charges add up to at most it, and the MI is their expectation)",
            f"  charges summed on this run's path: {charged:.4g} nats (depends on the path; "
            "not the mutual information, not a bound)",
        ]

    def plain_words(self, pool: int | None) -> str:
        one = self._unit()[0]
        bound = float(self.mi_bound)
        return (
            f"{self._lead(pool)} Everything released (and so this model) reveals at most "
            f"{bound:g} nats about which half it was: I(S*; releases) <= "
            f"{bound:g}, the budget, whatever path the run took. Nobody can guess whether "
            f"{a_or_an(one)} {one} was in the training half with probability above "
            f"{float(self.posterior_bound):.4f} (a coin flip is 0.5); that is the "
            f"bound of a DP epsilon of {float(self.matched_epsilon):.3g}."
        )

    def demo_words(self) -> list[str]:
        return [
            "In plain words: the pool was split at random into candidate halves and one half",
            f"was secretly chosen for training. The updates reveal at most {self.mi_bound:g} "
            "nats about",
            "which half it was (the budget, whatever path the run took), so nobody can tell",
            "whether a sentence was in the training half with probability above "
            f"{self.posterior_bound:.3f}",
            "(a coin flip is 0.5). It does not hide that the pool as a whole shaped the model.",
        ]

    def _guarantee_row(self) -> str:
        return f"I(S*; releases) <= {self.mi_bound:g} nats"

    def _family_rows(self) -> list[tuple[str, Any]]:
        charged = self.spent.get("charged")
        return [
            *super()._family_rows(),
            ("charges summed on this run's path", f"{fmt(charged)} nats (not the MI)"),
        ]

    def _limit_label(self) -> str:
        return f"budget {self.mi_bound:g} nats = the bound"
