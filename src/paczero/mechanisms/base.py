"""The seam between the estimator and privacy: mechanisms see per-example derivatives only.

A mechanism turns the vector g of per-example directional derivatives of one direction
into one released scalar coefficient. It never sees the model, and the estimator never
sees a secret. Everything a release writes to the public log goes in ``public``; values
that depend on the secret (S*, its sign, noise draws) go in ``private`` and end up only
under ``private/`` in the run directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from paczero.config import MechanismConfig
from paczero.privacy.randomness import RandomStream

RELEASE_KINDS = ("unanimous", "noisy", "coin", "skip", "free", "dp", "nonprivate")


@dataclass(frozen=True)
class StepContext:
    """What a mechanism may know about the step besides g."""

    step: int  # 0-based step index
    direction: int  # 0-based direction index k within the step
    indices: np.ndarray  # pool rows that g covers (all rows for a full-pool step)
    public: RandomStream
    secret: RandomStream


@dataclass
class Release:
    coeff: float  # the update is theta -= lr * coeff * z
    kind: str  # one of RELEASE_KINDS
    charge: float = 0.0  # privacy charged by this release (nats for PAC mechanisms)
    public: dict[str, Any] = field(default_factory=dict)
    private: dict[str, Any] = field(default_factory=dict)


class Mechanism:
    """Base class: one ``release`` per direction; state for checkpoints and the report."""

    name = "mechanism"
    private = False  # does the run carry a privacy guarantee?

    def __init__(
        self,
        cfg: MechanismConfig | None = None,
        *,
        pool_size: int,
        steps: int,
        directions: int = 1,
    ):
        self.cfg = cfg or MechanismConfig(name=self.name)
        self.pool_size = pool_size
        self.steps = steps
        self.directions = directions
        self.configure()

    def configure(self) -> None:
        """Read and check this mechanism's keys of ``self.cfg``, before any step runs."""

    def setup(self, public: RandomStream, secret: RandomStream) -> None:
        """Draw whatever the run needs once (membership matrix, secret index)."""

    def release(self, g: np.ndarray, ctx: StepContext) -> Release:
        raise NotImplementedError

    def release_step(self, derivatives: np.ndarray, ctx: StepContext) -> list[Release]:
        """All K releases of one step from the (K, n) derivatives taken at the same theta.

        The default releases direction by direction; a mechanism that privatises the K
        values of an example jointly (DP-AggZO) overrides this.
        """
        return [self.release(g, replace(ctx, direction=k)) for k, g in enumerate(derivatives)]

    def batch(self, step: int) -> np.ndarray | None:
        """Pool rows of this step when the mechanism must choose them (DP Poisson sampling
        from the secret stream); None lets the trainer draw its public minibatch."""
        return None

    def report(self) -> dict[str, Any]:
        """Extra fields for the privacy report (accountant, noise multiplier, ...)."""
        return {}

    @property
    def exhausted(self) -> bool:
        """True when the privacy budget is spent and training must stop."""
        return False

    def spent(self) -> dict[str, Any]:
        """What has been charged so far: {"mi": nats} for PAC, {"epsilon", "delta"} for DP."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Public state (safe to write outside private/)."""
        return {}

    def private_state_dict(self) -> dict[str, Any]:
        """Secret-dependent state (written only under private/)."""
        return {}

    def load_state_dict(self, public: dict[str, Any], private: dict[str, Any]) -> None:
        """Restore both parts; public state must never be re-derived from the secret."""
