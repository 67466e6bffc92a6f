"""The privacy report, typed: one class per family of guarantee, and everything said about it.

``Mechanism.privacy_report`` returns one of these; ``result.json["privacy"]`` is its JSON
(``to_json``) and every reader gets it back with ``PrivacyReport.from_json`` (the class is
chosen by the stored ``framework`` and, for PAC, by whether the bound is 0). The report owns
every statement of what the run's guarantee is: the terminal report (``describe``), the
model card's plain words, coverage, rows and tags, the demo's summary, the figures a table
compares (``headline``), the training plot's limit line (``curve``) and the claim an audit
holds the attack against (``claim``). Nothing outside ``paczero.mechanisms`` and this module
branches on a mechanism's name or family.

The four families: ``ZeroLeakReport`` (PAC, I(S*; releases) = 0), ``MIBudgetReport`` (PAC,
I(S*; releases) <= B nats), ``DPReport`` ((epsilon, delta)-DP) and ``NoGuaranteeReport``.
A mechanism's own entries beyond its family's (PACZero-MI's allocation, DP-SGD's frozen
layers) are kept as extra fields. The JSON keeps the keys in the order they were given, so
that the bytes of result.json do not depend on this module's field order.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    TypeAdapter,
    model_validator,
)

from paczero.guarantee import a_or_an, coverage_note, covers, fmt, unit_words
from paczero.privacy.bounds import (
    epsilon_to_mi,
    epsilon_to_posterior_bound,
    mi_to_epsilon,
    mi_to_posterior_bound,
    posterior_bound_to_mi,
)


class PrivacyReport(BaseModel):
    """``result.json["privacy"]``: the run's bookkeeping (set by ``report.privacy_report``)
    and the mechanism's section (its family's fields and its own extras)."""

    model_config = ConfigDict(extra="allow")

    framework: ClassVar[str] = "none"  # the stored discriminator (``Mechanism.family``)
    # The ``guarantee`` line of the family, over the run's unit ("example" or "user").
    GUARANTEE: ClassVar[str] = ""
    TAGS: ClassVar[tuple[str, ...]] = ()  # the Hub tags of the family

    # the run's bookkeeping
    mechanism: str | None = None
    private: bool = False
    prior: float = 0.5
    unanimity_fraction: float | None = None
    release_kinds: dict[str, int] = Field(default_factory=dict)
    releases: int = 0
    steps: int = 0
    secret_source: str | None = None
    # the guarantee in one line, and which data it covers (``coverage``)
    guarantee: str = ""
    data: dict[str, Any] | None = None
    # the prompt chosen before training (paczero.selection): chosen, rule, candidates, cost
    selection: dict[str, Any] | None = None

    _order: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_order(cls, value: Any, handler: Any) -> PrivacyReport:
        report = handler(value)
        if isinstance(value, dict):
            report._order = list(value)
        return report

    # ------------------------------------------------------------ JSON

    @classmethod
    def section(cls, **entries: Any) -> PrivacyReport:
        """A mechanism's section: ``framework`` first, then ``entries`` in their order."""
        return cls.model_validate({"framework": cls.framework, **entries})

    @staticmethod
    def from_json(data: dict[str, Any] | None) -> PrivacyReport:
        """The report a run's files hold, as its family's class (an old or foreign report
        without a known ``framework`` reads as no guarantee)."""
        return _READER.validate_python(dict(data or {}))

    def to_json(self) -> dict[str, Any]:
        """The report as ``result.json`` holds it: the keys it was given, in that order."""
        out = self.model_dump(mode="json", exclude_unset=True)
        out["framework"] = self.framework
        rank = {key: i for i, key in enumerate(self._order)}
        return dict(sorted(out.items(), key=lambda item: rank.get(item[0], len(rank))))

    def updated(self, **entries: Any) -> PrivacyReport:
        """A copy with ``entries`` set (a new key goes last, as in a dict)."""
        return PrivacyReport.from_json({**self.to_json(), **entries})

    def with_run(self, bookkeeping: dict[str, Any], coverage: dict[str, Any] | None) -> Any:
        """The whole report of a run: its ``bookkeeping`` first, this section, and which
        data the guarantee covers (``coverage``: the splits' public facts) in words."""
        report = PrivacyReport.from_json({**bookkeeping, **self.to_json()})
        if coverage is None:
            return report
        return report.updated(
            data={**coverage, "note": coverage_note(coverage)},
            guarantee=report.guarantee_over(coverage),
        )

    def guarantee_over(self, coverage: dict[str, Any] | None) -> str:
        """The ``guarantee`` line over the run's unit (word for word for an example-level
        run, and for a line of the mechanism's own)."""
        if self.GUARANTEE and self.guarantee == self.GUARANTEE.format(one="example"):
            return self.GUARANTEE.format(one=unit_words(coverage)[0])
        return self.guarantee

    # ------------------------------------------------------------ words

    def describe(self) -> str:
        """The terminal report in plain words, from the fields."""
        lines = [f"Privacy report ({self.mechanism})", *self._report_lines()]
        if self.unanimity_fraction is not None:
            lines.append(f"  unanimous releases: {100 * self.unanimity_fraction:.1f}%")
        kinds = ", ".join(f"{k} {v}" for k, v in self.release_kinds.items())
        lines.append(f"  releases: {kinds} over {self.steps} steps")
        if self.selection:
            lines.append(f"  prompt selection: {self._selection_words()}")
        return "\n".join(lines)

    def _selection_words(self) -> str:
        """What the selection stage claimed and cost (docs/selection.md)."""
        chosen, rule = self.selection["chosen"], self.selection["rule"]
        among = len(self.selection["candidates"])
        if rule == "unanimous":
            return (
                f"'{chosen}' chosen among {among} candidates before training, each challenge "
                "released only when every candidate subset agreed: I = 0, nothing added to "
                "the figures above"
            )
        if rule == "best":
            return (
                f"'{chosen}' chosen among {among} candidates by the lowest pool loss (no guarantee)"
            )
        return f"'{chosen}', the first of {among} candidates, used without a selection (no cost)"

    def _report_lines(self) -> list[str]:
        return [f"  {self.guarantee}"]

    def _data_lines(self) -> list[str]:
        return [] if self.data is None else [f"  data: {self.data['note']}"]

    def _unit(self) -> tuple[str, str]:
        return unit_words(self.data)

    def plain_words(self, pool: int | None) -> str:
        """The model card's guarantee in plain words (``pool``: its number of units)."""
        return (
            "No privacy guarantee: this run's mechanism released data-dependent values "
            "unprotected (a non-private baseline)."
        )

    def demo_words(self) -> list[str]:
        """The demo summary's paragraph in plain words (its pool holds sentences)."""
        return []

    def protects(self, example: str) -> str | None:
        """What the guarantee protects of each pool ``example`` (None: nothing)."""
        return None

    def covers(self, splits: dict[str, Any]) -> str:
        """The model card's "What it covers": the pool only, never the dev set."""
        return covers(self.protects, self.data, splits)

    def card_rows(self) -> list[tuple[str, Any]]:
        """The model card's table of the guarantee and what it cost."""
        rows: list[tuple[str, Any]] = [("mechanism", f"`{self.mechanism}`")]
        rows += self._family_rows()
        if self.unanimity_fraction is not None:
            rows.append(("unanimous releases", f"{100 * self.unanimity_fraction:.1f}%"))
        rows.append(("steps (releases)", f"{self.steps} ({self.releases})"))
        rows.append(("secret source", self.secret_source))
        return rows

    def _family_rows(self) -> list[tuple[str, Any]]:
        return [("guarantee", "none")]

    def batch_text(self) -> str | None:
        """The card's words for a step's rows when the mechanism chose them (None: the
        public minibatch of ``train.batch_size``)."""
        return None

    # ------------------------------------------------------------ figures

    def headline(self) -> tuple[float | None, float | None]:
        """(MI in nats, epsilon) as a table compares runs of different families."""
        return None, None

    def curve(self, records: list[Any]) -> dict[str, Any] | None:
        """The privacy spent after each step of the release log ``records`` and the line it
        stays below, as the training plot draws them (None: nothing to draw)."""
        return None

    def spent_on(self, records: list[Any]) -> PrivacyReport:
        """This report with the spend logged in ``records`` (an unfinished run's)."""
        return self

    def claim(self) -> dict[str, Any] | None:
        """The guarantee as an audit holds an attack against it (None: nothing promised)."""
        return None


class NoGuaranteeReport(PrivacyReport):
    """A non-private mechanism: no bound, nothing spent."""

    framework: ClassVar[str] = "none"
    GUARANTEE: ClassVar[str] = (
        "No privacy guarantee: this mechanism releases data-dependent values unprotected."
    )

    @classmethod
    def section(cls, **entries: Any) -> PrivacyReport:
        base = {"budget": None, "spent": None, "posterior_bound": None, "matched_epsilon": None}
        return super().section(**base, guarantee=cls.GUARANTEE, **entries)


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
        from paczero.auditing.stats import fano_bound, identification_bound

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


def _family(value: Any) -> str:
    """The tag of the class a stored report reads as."""
    if isinstance(value, PrivacyReport):
        framework, bound = value.framework, getattr(value, "mi_bound", None)
    else:
        framework, bound = value.get("framework", "none"), value.get("mi_bound")
    if framework == "pac":
        return "pac-zero" if not bound else "pac-mi"
    return framework if framework == "dp" else "none"


_READER: TypeAdapter[Any] = TypeAdapter(
    Annotated[
        Union[  # noqa: UP007
            Annotated[ZeroLeakReport, Tag("pac-zero")],
            Annotated[MIBudgetReport, Tag("pac-mi")],
            Annotated[DPReport, Tag("dp")],
            Annotated[NoGuaranteeReport, Tag("none")],
        ],
        Discriminator(_family),
    ]
)


# ---------------------------------------------------------------- the audit's claim


def claim_words(claim: dict[str, Any] | None, mechanism: str) -> str:
    """The claim an audit states (``PrivacyReport.claim``), in one line."""
    if claim is None:
        return f"Claim: none ({mechanism} is not private)"
    if claim["epsilon_kind"] == "matched":
        return (
            f"Claim: I(S*; releases) <= {claim['mi_bound']:g} nats: membership success <= "
            f"{claim['posterior_bound']:.4f}, matched epsilon {claim['epsilon']:.3g}; naming S* "
            f"among {claim['candidates']} <= {claim['identify_bound']:.3f} "
            f"(Fano: {claim['fano_bound']:.3f})"
        )
    return (
        f"Claim: ({claim['epsilon']:.3g}, {claim['delta']:g})-DP: membership success <= "
        f"{claim['posterior_bound']:.4f}"
    )


def claimed_epsilon_words(claim: dict[str, Any]) -> str:
    """The epsilon a claim holds an empirical epsilon against, named as what it is."""
    if claim["epsilon_kind"] == "matched":
        return f"the matched epsilon {claim['epsilon']:.3g} of I <= {claim['mi_bound']:g} nats"
    return f"the claimed epsilon {claim['epsilon']:.3g}"


def epsilon_kind_word(claim: dict[str, Any]) -> str:
    """``matched`` (a PAC bound's matched epsilon) or ``claimed`` (a DP epsilon)."""
    return "matched" if claim["epsilon_kind"] == "matched" else "claimed"


__all__ = [
    "DPReport",
    "MIBudgetReport",
    "NoGuaranteeReport",
    "PACReport",
    "PrivacyReport",
    "ZeroLeakReport",
    "claim_words",
    "claimed_epsilon_words",
    "epsilon_kind_word",
]
