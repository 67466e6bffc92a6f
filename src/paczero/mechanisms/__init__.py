"""Release mechanisms: one class per mechanism name, built from the run config.

Adding a mechanism is one file (its class and its ``Config`` section) and one line in
``REGISTRY`` below (docs/algorithms.md 10); ``paczero.config`` builds the ``mechanism``
section of a run from ``REGISTRY``.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, ValidationError

from paczero.errors import UserError
from paczero.mechanisms.base import (
    RELEASE_KINDS,
    Mechanism,
    MechanismSection,
    Release,
    StepContext,
)
from paczero.mechanisms.dp import DPZO, DPAggZO, DPZero
from paczero.mechanisms.firstorder import DPSGD, Backprop
from paczero.mechanisms.nonprivate import (
    FullMean,
    FullSign,
    MeZO,
    RandomSign,
    SecretMean,
    SecretSign,
)
from paczero.mechanisms.paczero import PACZeroMI, PACZeroZPL

REGISTRY: dict[str, type[Mechanism]] = {
    cls.name: cls
    for cls in (
        MeZO,
        PACZeroZPL,
        PACZeroMI,
        FullMean,
        FullSign,
        SecretMean,
        SecretSign,
        RandomSign,
        DPZero,
        DPZO,
        DPAggZO,
        DPSGD,
        Backprop,
    )
}


# The release kinds of the mechanisms whose model the release log does not determine
# (``Mechanism.replayable`` False: whole gradients); a log holding one cannot be replayed.
UNREPLAYABLE_KINDS = frozenset(
    kind for cls in REGISTRY.values() if not cls.replayable for kind in cls.kinds
)

# A run that names no mechanism is private: PACZero-ZPL, with M sized to its pool.
DEFAULT_MECHANISM = "paczero-zpl"
DEFAULT_MAX_SUBSETS = 128


def default_subsets(pool_units: int) -> int:
    """M of a run that names no mechanism: the largest even M <= min(128, pool units),
    at least 2 (each unit sits in M/2 subsets; more subsets than units add nothing)."""
    m = min(DEFAULT_MAX_SUBSETS, pool_units)
    return max(2, m - m % 2)


def mechanism_class(name: str) -> type[Mechanism]:
    """The registered class of ``mechanism.name`` (ValueError naming the choices)."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        choices = ", ".join(REGISTRY)
        raise ValueError(f"unknown mechanism '{name}'; choose one of {choices}") from None


def section_type() -> Any:
    """The ``mechanism`` section of a run: one ``Config`` per registered mechanism, picked
    by ``name`` (pydantic's discriminated union; an unknown key of that mechanism is
    refused)."""
    sections = tuple(dict.fromkeys(cls.Config for cls in REGISTRY.values()))
    return Annotated[Union[sections], Field(discriminator="name")]  # noqa: UP007


def mechanism_keys(name: str) -> tuple[str, ...]:
    """The ``mechanism.*`` keys ``name`` reads (empty for an unknown name)."""
    cls = REGISTRY.get(name) if isinstance(name, str) else None
    return tuple(cls.Config.model_fields) if cls is not None else ()


def mechanism_config(name: str, **keys: Any) -> MechanismSection:
    """The validated section of mechanism ``name``, for a mechanism built by hand:
    ``PACZeroMI(mechanism_config("paczero-mi", budget=0.3), pool_size=..., steps=...)``.
    A bad or foreign key is a ``UserError`` naming it, as in a run config."""
    try:
        return mechanism_class(name).Config(name=name, **keys)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(["mechanism", *(str(p) for p in first["loc"])])
        if first["type"] == "extra_forbidden":
            reads = ", ".join(mechanism_keys(name))
            raise UserError(
                f"unknown config key '{key}' for mechanism '{name}' ({reads})"
            ) from None
        msg = first["msg"].removeprefix("Value error, ")
        where = "config" if key == "mechanism" else f"value for '{key}'"
        raise UserError(f"invalid {where}: {msg}") from None


def build_mechanism(
    cfg: MechanismSection, *, pool_size: int, steps: int, directions: int
) -> Mechanism:
    """The mechanism ``cfg.name`` for a pool of ``pool_size`` rows, T steps, K directions."""
    cls = mechanism_class(cfg.name)
    return cls(cfg, pool_size=pool_size, steps=steps, directions=directions)


__all__ = [
    "DEFAULT_MECHANISM",
    "RELEASE_KINDS",
    "REGISTRY",
    "DPAggZO",
    "DPZO",
    "DPZero",
    "FullMean",
    "FullSign",
    "MeZO",
    "Mechanism",
    "MechanismSection",
    "PACZeroMI",
    "PACZeroZPL",
    "RandomSign",
    "Release",
    "SecretMean",
    "SecretSign",
    "StepContext",
    "UNREPLAYABLE_KINDS",
    "build_mechanism",
    "default_subsets",
    "mechanism_class",
    "mechanism_config",
    "mechanism_keys",
    "section_type",
]
