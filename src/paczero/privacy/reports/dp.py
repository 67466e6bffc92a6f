"""The (epsilon, delta)-DP report of the DP baselines (``DPReport``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from paczero.guarantee import a_or_an, fmt
from paczero.privacy.bounds import (
    epsilon_to_mi,
    epsilon_to_posterior_bound,
    posterior_bound_to_mi,
)
from paczero.privacy.reports.base import PrivacyReport


class DPReport(PrivacyReport):
    """The DP baselines: (epsilon, delta)-DP for each pool unit under a stated neighbouring
    relation, spent as the accountant computed it for the run's steps."""

    framework: ClassVar[str] = "dp"
    GUARANTEE: ClassVar[str] = (
        "(epsilon, delta)-differential privacy for each pool {one} under the neighbouring "
        "relation stated below; the membership-inference bound is the DP bound at prior "
        "0.5. The guarantee covers the pool only."
    )
    TAGS: ClassVar[tuple[str, ...]] = ("differential-privacy",)

    budget: dict[str, Any] = Field(default_factory=dict)
    spent: dict[str, float] = Field(default_factory=dict)
    posterior_bound: float | None = None
    matched_epsilon: float | None = None
    matched_mi: float | None = None
    accountant: str | None = None
    neighbouring_relation: str | None = None
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    expected_batch: int | None = None
    denominator: str | None = None
    count_epsilon: float | None = None

    @classmethod
    def target(cls, *, epsilon: float, delta: float, match_mi: float | None) -> dict[str, Any]:
        """The ``budget`` entry of a DP section: the target and what it promises."""
        return {
            "epsilon": epsilon,
            "delta": delta,
            "match_mi": match_mi,
            "posterior_bound": epsilon_to_posterior_bound(epsilon, delta),
            "matched_mi": epsilon_to_mi(epsilon, delta),
        }

    @classmethod
    def spending(cls, *, epsilon: float, delta: float, **entries: Any) -> PrivacyReport:
        """The section of a DP mechanism that spent (epsilon, delta); ``entries`` (the
        budget first) in their order around the bounds it implies."""
        budget = entries.pop("budget")
        bound = epsilon_to_posterior_bound(epsilon, delta)
        return cls.section(
            budget=budget,
            spent={"epsilon": epsilon, "delta": delta},
            posterior_bound=bound,
            matched_epsilon=None,
            matched_mi=posterior_bound_to_mi(bound),
            guarantee=cls.GUARANTEE.format(one="example"),
            **entries,
        )

    def _report_lines(self) -> list[str]:
        spent = self.spent
        lines = [
            f"  spent: epsilon {spent['epsilon']:.4g}, delta {spent['delta']:g} "
            f"({self.accountant} accountant)",
            f"  neighbouring relation: {self.neighbouring_relation}",
            f"  membership-inference success bound: {self.posterior_bound:.4f} "
            f"(prior 0.5); matched MI: {self.matched_mi:.4g} nats",
            f"  {self.guarantee}",
            f"  batch: {self.dp_batch_text()}",
            f"  denominator: {self.denominator_text()}",
        ]
        extra = self.model_extra or {}
        if "release_note" in extra:  # dp-sgd: it releases whole gradients
            lines.append(f"  {extra['release_note']}")
        if extra.get("frozen_note"):  # the layers frozen for want of Opacus support
            lines.append(f"  {extra['frozen_note']}")
        lines += self._data_lines()
        lines.append(f"  secret source: {self.secret_source}")
        return lines

    def dp_batch_text(self) -> str:
        """A DP step's rows: a Poisson sample of the pool, not ``train.batch_size`` rows."""
        return (
            f"a Poisson sample of the pool, expected size {self.expected_batch} (rate q = "
            f"{self.sample_rate:.4g}); its real size is secret; train.batch_size is not used"
        )

    def denominator_text(self) -> str:
        """What divides the noisy sum, and why a noisy count buys nothing here."""
        if self.denominator == "noisy-count":
            return (
                f"a noisy count of the pool times q (the DP-AggZO paper's): it spends epsilon "
                f"{self.count_epsilon:.3g} of the total to hide the pool's size, which this "
                "report states anyway; it is kept only to reproduce the paper's noise "
                "(mechanism.denominator: expected spends nothing)"
            )
        return f"the expected batch q N = {self.expected_batch} (public; costs no epsilon)"

    def plain_words(self, pool: int | None) -> str:
        one, many = self._unit()
        pool_text = f"the {pool} {many} of the private pool" if pool else "the private pool"
        spent = self.spent or {}
        relation, _, detail = str(self.neighbouring_relation or "stated").partition(";")
        detail = f" ({detail.strip()})" if detail.strip() else ""
        return (
            f"({float(spent.get('epsilon', 0.0)):.4g}, {float(spent.get('delta', 0.0)):g})-"
            f"differential privacy for each of {pool_text}, under the {relation.strip()} "
            f"relation{detail}: {_likely(relation.strip(), one)}. No attacker "
            f"guesses whether {a_or_an(one)} {one} was in the pool with probability above "
            f"{float(self.posterior_bound or 0.0):.4f} (prior 0.5)."
        )

    def protects(self, example: str) -> str | None:
        return (
            f"the presence in the pool of each {example} (the secret Poisson samples "
            "were drawn from it)"
        )

    def _family_rows(self) -> list[tuple[str, Any]]:
        spent, budget = self.spent or {}, self.budget or {}
        return [
            ("guarantee", f"({fmt(spent.get('epsilon'))}, {fmt(spent.get('delta'), 'g')})-DP"),
            (
                "budget (target)",
                f"epsilon {fmt(budget.get('epsilon'), 'g')}, delta {fmt(budget.get('delta'), 'g')}",
            ),
            ("epsilon spent", fmt(spent.get("epsilon"))),
            ("neighbouring relation", self.neighbouring_relation),
            ("accountant", self.accountant),
            ("noise multiplier", fmt(self.noise_multiplier)),
            ("batch", self.dp_batch_text()),
            ("denominator", self.denominator_text()),
            ("membership-inference bound", fmt(self.posterior_bound)),
            ("matched MI", f"{fmt(self.matched_mi)} nats"),
        ]

    def batch_text(self) -> str | None:
        return f"Poisson, expected {self.expected_batch}" if self.expected_batch else None

    def headline(self) -> tuple[float | None, float | None]:
        return self.matched_mi, (self.spent or {}).get("epsilon")

    def curve(self, records: list[Any]) -> dict[str, Any] | None:
        if not records or any(r.epsilon is None for r in records):
            return None
        budget = self.budget or {}
        # the target as the config set it; a target matched to an MI has no line
        target = budget.get("epsilon") if budget.get("match_mi") is None else None
        return {
            "kind": "epsilon",
            "values": [float(r.epsilon) for r in records],
            "label": "epsilon spent",
            "axis": "DP epsilon",
            "limit": float(target) if target is not None else None,
            "limit_label": f"target epsilon {target}",
        }

    def spent_on(self, records: list[Any]) -> PrivacyReport:
        if not records or records[-1].epsilon is None:
            return self
        return self.updated(spent={**(self.spent or {}), "epsilon": records[-1].epsilon})

    def claim(self) -> dict[str, Any] | None:
        epsilon, delta = float(self.spent["epsilon"]), float(self.spent["delta"])
        return {
            "framework": "dp",
            "epsilon": epsilon,
            "delta": delta,
            "epsilon_kind": "dp",
            "posterior_bound": epsilon_to_posterior_bound(epsilon, delta),
        }


def _likely(relation: str, one: str) -> str:
    """What a DP guarantee says, in the words of its neighbouring relation."""
    if relation == "replace-one":
        return (
            f"the model is almost as likely whatever any one {one} of the pool is (one "
            f"{one} replaced by another)"
        )
    return f"the model is almost as likely whether any one {one} was in the pool or not"
