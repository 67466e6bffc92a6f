"""Release mechanisms: one class per mechanism name, built from the run config."""

from __future__ import annotations

from paczero.config import MechanismConfig
from paczero.mechanisms.base import RELEASE_KINDS, Mechanism, Release, StepContext
from paczero.mechanisms.dp import DPZO, DPAggZO, DPZero
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
    )
}


def mechanism_class(name: str) -> type[Mechanism]:
    """The registered class of ``mechanism.name`` (ValueError naming the choices)."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        choices = ", ".join(REGISTRY)
        raise ValueError(f"unknown mechanism '{name}'; choose one of {choices}") from None


def build_mechanism(
    cfg: MechanismConfig, *, pool_size: int, steps: int, directions: int
) -> Mechanism:
    """The mechanism ``cfg.name`` for a pool of ``pool_size`` rows, T steps, K directions."""
    cls = mechanism_class(cfg.name)
    return cls(cfg, pool_size=pool_size, steps=steps, directions=directions)


__all__ = [
    "RELEASE_KINDS",
    "REGISTRY",
    "DPAggZO",
    "DPZO",
    "DPZero",
    "FullMean",
    "FullSign",
    "MeZO",
    "Mechanism",
    "PACZeroMI",
    "PACZeroZPL",
    "RandomSign",
    "Release",
    "SecretMean",
    "SecretSign",
    "StepContext",
    "build_mechanism",
    "mechanism_class",
]
