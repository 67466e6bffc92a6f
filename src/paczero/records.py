"""The public release record of one step: the line of ``releases.jsonl``.

Written by the trainer (``ReleaseRecord.of_step``) and read back (``from_json``) by every
tool that works from a run's log: resume and export replay it, the report and the plots
draw it, tracking sends it, the audit attacks it. The record holds public inputs and what
the mechanism released, nothing else (docs/design.md, invariant 8): the loss of a step is
public only when its rows are (a DP Poisson sample's loss stays under private/).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paczero.mechanisms.base import RELEASE_KINDS

FIELDS = ("step", "lr", "seeds", "coeffs", "kinds", "charge", "cumulative", "unanimous")
FIELDS += ("frac_plus", "public", "state")
OPTIONAL = ("loss", "epsilon", "prev", "sha")  # present only when they apply


@dataclass(frozen=True)
class ReleaseRecord:
    step: int  # 0-based
    lr: float
    seeds: list[int]  # one direction seed per direction
    coeffs: list[float]  # the released coefficients: theta -= lr * coeff / K * z
    kinds: list[str]  # one of RELEASE_KINDS per direction
    charge: float  # privacy charged by this step (nats for PAC mechanisms)
    cumulative: float  # the sum of the charges so far
    unanimous: list[bool]  # per direction; False where the mechanism does not say
    frac_plus: list[float | None]
    public: list[dict[str, Any]]  # each release's public fields
    state: dict[str, Any]  # the mechanism's public state after this step
    loss: float | None = None  # the step's loss estimate, only on public rows
    epsilon: float | None = None  # DP: epsilon spent so far (data-independent)
    prev: str | None = None  # the hash chain (paczero.privacy.ledger), once logged
    sha: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a newer writer, kept

    @classmethod
    def of_step(cls, result: Any, mechanism: Any) -> ReleaseRecord:
        """The record of a ``StepResult`` released by ``mechanism`` (rank 0); a release of
        a kind the mechanism does not declare is a bug, refused before it is logged."""
        outs = result.releases
        for out in outs:
            if out.kind not in mechanism.kinds:
                raise RuntimeError(
                    f"{mechanism.name} released a '{out.kind}', not one of its kinds "
                    f"{mechanism.kinds}"
                )
        spent = mechanism.spent()
        return cls(
            step=result.step,
            lr=result.lr,
            seeds=result.seeds,
            coeffs=result.coeffs,
            kinds=[o.kind for o in outs],
            charge=float(sum(o.charge for o in outs)),
            cumulative=float(spent.get("charged", 0.0)),
            unanimous=[bool(o.public.get("unanimous", False)) for o in outs],
            frac_plus=[o.public.get("frac_plus") for o in outs],
            public=[jsonable(o.public) for o in outs],
            state=mechanism.state_dict(),
            loss=None if result.rows_secret else result.loss,
            epsilon=float(spent["epsilon"]) if "epsilon" in spent else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The logged mapping: every field, the optional ones only when they apply."""
        out = {name: getattr(self, name) for name in FIELDS}
        out.update({k: getattr(self, k) for k in OPTIONAL if getattr(self, k) is not None})
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any], kinds: Iterable[str] = RELEASE_KINDS) -> ReleaseRecord:
        """A logged record; ValueError if a field is missing or a kind is not in ``kinds``
        (the run's mechanism's, where the reader knows it)."""
        missing = [name for name in FIELDS if name not in data]
        if missing:
            raise ValueError(f"release record of step {data.get('step')} lacks {missing[0]}")
        allowed = tuple(kinds)
        for kind in data["kinds"]:
            if kind not in allowed:
                raise ValueError(
                    f"release record of step {data['step']}: kind '{kind}' is not one of "
                    f"{', '.join(allowed)}"
                )
        known = {k: data[k] for k in (*FIELDS, *OPTIONAL) if k in data}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**known, extra=extra)

    def unanimity(self) -> list[bool]:
        """Whether the subsets agreed, for each release that says (PACZero's; MeZO's and
        DP's releases do not)."""
        return [bool(p["unanimous"]) for p in self.public if "unanimous" in p]

    def agreement(self) -> float:
        """The fraction of this step's directions released unanimously (0 if none say)."""
        return sum(self.unanimous) / max(len(self.unanimous), 1)

    def amounts(self, directions: int) -> list[float]:
        """The update of each direction: theta -= amount * z (the mean over K directions)."""
        return [self.lr * c / directions for c in self.coeffs]


def release_records(
    data: Iterable[dict[str, Any]], kinds: Iterable[str] = RELEASE_KINDS
) -> list[ReleaseRecord]:
    """Logged mappings as records (ValueError naming the first bad one)."""
    allowed = tuple(kinds)
    return [ReleaseRecord.from_json(r, allowed) for r in data]


def unanimity(records: Iterable[ReleaseRecord]) -> list[bool]:
    """The flags of every release that says whether its subsets agreed, in order."""
    return [flag for record in records for flag in record.unanimity()]


def says_unanimity(records: list[ReleaseRecord]) -> bool:
    """PACZero releases say whether the subsets agreed; MeZO and DP releases do not."""
    return bool(records) and bool(records[0].unanimity())


def jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    """Release fields as JSON values (numpy scalars as Python, non-finite floats as text)."""
    out = {}
    for key, value in fields.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        out[key] = value
    return out
