"""The privacy report's base class (``PrivacyReport``: the run's bookkeeping, the JSON of
``result.json["privacy"]``, and what every family says) and the family without a guarantee.
``FAMILIES`` maps the tag a stored report reads as to its class (``paczero.privacy.reports``
fills it with the four families)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from paczero.guarantee import coverage_note, covers, unit_words

# the class of each family, by the tag ``_family`` gives a stored report
FAMILIES: dict[str, type[PrivacyReport]] = {}


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
        data = dict(data or {})
        return FAMILIES[_family(data)].model_validate(data)

    def to_json(self) -> dict[str, Any]:
        """The report as ``result.json`` holds it: the keys it was given, in that order."""
        out = self.model_dump(mode="json", exclude_unset=True)
        out["framework"] = self.framework
        rank = {key: i for i, key in enumerate(self._order)}
        return dict(sorted(out.items(), key=lambda item: rank.get(item[0], len(rank))))

    def updated(self, **entries: Any) -> PrivacyReport:
        """A copy with ``entries`` set (a new key goes last, as in a dict)."""
        return PrivacyReport.from_json({**self.to_json(), **entries})

    def with_run(
        self, bookkeeping: dict[str, Any], coverage: dict[str, Any] | None
    ) -> PrivacyReport:
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


def _family(value: Any) -> str:
    """The tag of the class a stored report reads as."""
    if isinstance(value, PrivacyReport):
        framework, bound = value.framework, getattr(value, "mi_bound", None)
    else:
        framework, bound = value.get("framework", "none"), value.get("mi_bound")
    if framework == "pac":
        return "pac-zero" if not bound else "pac-mi"
    return framework if framework == "dp" else "none"
