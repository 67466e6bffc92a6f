"""The seam between the estimator and privacy: mechanisms see per-example derivatives only.

A mechanism turns the vector g of per-example directional derivatives of one direction
into one released scalar coefficient. It never sees the model, and the estimator never
sees a secret. Everything a release writes to the public log goes in ``public``; values
that depend on the secret (S*, its sign, noise draws) go in ``private`` and end up only
under ``private/`` in the run directory.

Each mechanism is one self-describing class: its ``name``, its config section (``Config``:
the ``mechanism.*`` keys it reads, unknown keys refused, its own rules as validators), its
privacy ``family`` (pac, dp or none), the run-level check of its keys against the pool,
steps and directions (``check_config``), whether it chooses the step's rows itself
(``batch``), whether it releases gradients (``first_order``) and whether its model can be
replayed from the release log (``replayable``), the kinds of release it makes (``kinds``)
and its own section of the privacy report (``privacy_report``). Adding one is a file plus a
registry line (docs/algorithms.md 10).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from paczero.errors import UserError
from paczero.privacy.randomness import RandomStream
from paczero.privacy.reports import NoGuaranteeReport, PrivacyReport
from paczero.values import Section

# What a release can be. "free": the posterior already knew the sign (charge 0);
# "noiseless": the secret sign released as is, charged its full entropy H_b(q) > 0.
RELEASE_KINDS = (
    "unanimous",
    "coin",
    "skip",
    "free",
    "noiseless",
    "noisy",
    "dp",
    "nonprivate",
    "dp-sgd",  # a first-order step: a whole noisy gradient
    "backprop",  # a first-order step: the plain mean gradient
)

FAMILIES = ("pac", "dp", "none")  # what a mechanism's guarantee is stated in

# The capabilities a mechanism declares (class attributes of ``Mechanism``): what the rest
# of paczero reads of it instead of its name; a stand-in (distributed.RankZeroMechanism)
# copies them.
CAPABILITIES = ("private", "uses_subsets", "chooses_rows", "first_order", "replayable")


class MechanismSection(Section):
    """The ``mechanism.*`` keys of one mechanism: ``name`` picks it (a ``Literal`` of the
    names the section serves), the other fields are the keys it reads; any other key is
    refused. Rules that need only these keys are validators here; rules that need the pool,
    steps or directions are the mechanism's ``check_config``. What a caller outside the
    mechanism needs of the keys is a method here, so that nobody probes for a key."""

    name: str

    def derivative_clip(self) -> float | None:
        """C, the bound |g_i| <= C the mechanism clips each per-example directional
        derivative to (None: it does not clip); what a replay of its releases clips with."""
        return None

    def mi_budget(self) -> float | None:
        """B, the bound I(S*; releases) <= B nats the keys set (None: no MI budget; a PAC
        mechanism without one guarantees I = 0)."""
        return None


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

    name: ClassVar[str] = "mechanism"
    Config: ClassVar[type[MechanismSection]] = MechanismSection  # its ``mechanism.*`` keys
    family: ClassVar[str] = "none"  # the guarantee's framework: one of FAMILIES
    kinds: ClassVar[tuple[str, ...]] = ("nonprivate", "skip")  # the RELEASE_KINDS it makes
    private: ClassVar[bool] = False  # does the run carry a privacy guarantee?
    uses_subsets: ClassVar[bool] = False  # reads the M candidate subsets (needs N >= M)
    chooses_rows: ClassVar[bool] = False  # ``batch`` draws each step's rows from the secret
    # Zeroth-order (False): ``release_step`` turns per-example directional derivatives into
    # coefficients of public directions (ZOOptimizer). First-order (True): the mechanism
    # releases whole gradients (``release_gradient``, FirstOrderOptimizer).
    first_order: ClassVar[bool] = False
    # The model after step t is a pure function of the base model, the public seeds and the
    # release log up to t (a ZO release is a coefficient of a public direction): export,
    # resume and audit may replay the log. False: only a checkpoint holds the model.
    replayable: ClassVar[bool] = True
    # Why the guarantee depends on the planned number of steps (``train.steps``), or None
    # where it holds for any number (``resume --set train.steps`` may then change it).
    counts_steps: ClassVar[str | None] = None
    # What a "nonprivate" release states about S* (the transcript audit's posterior update):
    # "sign", S*'s subset sign (secret-sign); "mean", S*'s subset mean (secret-mean); None,
    # nothing about S* (a function of the whole batch, or no such release).
    reveals: ClassVar[str | None] = None

    def __init__(
        self,
        cfg: MechanismSection | None = None,
        *,
        pool_size: int,
        steps: int,
        directions: int = 1,
    ):
        self.cfg = cfg if cfg is not None else self.Config(name=self.name)
        try:
            self.check_config(self.cfg, pool_size=pool_size, steps=steps, directions=directions)
        except ValueError as err:
            raise UserError(str(err)) from None
        self.pool_size = pool_size
        self.steps = steps
        self.directions = directions
        started = time.perf_counter()
        self.configure()
        self.configure_s = time.perf_counter() - started  # e.g. DP calibration; for timing

    @classmethod
    def check_config(
        cls, cfg: MechanismSection, *, pool_size: int, steps: int, directions: int
    ) -> None:
        """Raise ValueError (one line naming the key) if this mechanism cannot run with
        ``cfg`` on a pool of ``pool_size`` rows for T ``steps`` and K ``directions``.

        The run config calls it while validating, the constructor calls it again, so a
        mechanism built by hand (``ZOOptimizer`` users) is checked the same way. Rules of
        the keys alone are validators of ``Config``.
        """
        if pool_size < 1 or steps < 1 or directions < 1:
            raise ValueError(
                f"{cls.name}: pool size, steps and directions must be >= 1, got "
                f"{pool_size}, {steps}, {directions}"
            )

    @classmethod
    def check_run(cls, cfg: Any) -> None:
        """Raise ValueError (one line naming the key) if this mechanism cannot run with the
        rest of the run config ``cfg`` (a ``RunConfig``: task, data, ...); most need not."""

    def configure(self) -> None:
        """Read this mechanism's keys of ``self.cfg`` (already checked), before any step."""

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
        """Pool rows of this step when the mechanism must choose them itself
        (``chooses_rows``: DP Poisson sampling from the secret stream; the rows, and
        anything computed from them, are then secret); None lets the optimizer draw its
        public minibatch."""
        return None

    def privacy_report(self) -> PrivacyReport:
        """This mechanism's section of the privacy report, as its family's report class
        (``paczero.privacy.reports``; ``family`` names it): the guarantee it proves (from
        the configured budget, never from one run's realised path) and what it cost."""
        return NoGuaranteeReport.section()

    @property
    def exhausted(self) -> bool:
        """True when the privacy budget is spent and training must stop."""
        return False

    def spent(self) -> dict[str, Any]:
        """Running cost for the log and the progress bar: {"charged": nats} for PAC
        mechanisms (the sum of this path's charges), {"epsilon", "delta"} for DP."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Public state (safe to write outside private/)."""
        return {}

    def private_state_dict(self) -> dict[str, Any]:
        """Secret-dependent state (written only under private/)."""
        return {}

    def load_state_dict(self, public: dict[str, Any], private: dict[str, Any]) -> None:
        """Restore both parts; public state must never be re-derived from the secret."""
