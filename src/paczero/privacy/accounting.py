"""DP accounting for the zeroth-order baselines, through ``dp-accounting`` (no hand-rolled RDP).

Every DP mechanism here Poisson-samples the pool at a public rate q and adds noise to a sum
of clipped per-example values, so the accountant sees T self-composed Poisson-subsampled
Gaussian (or Laplace) events, plus an optional one-off Laplace count (DP-AggZO's noisy
batch-size denominator). The neighbouring relation is add-or-remove-one record, which is
what Poisson-subsampling amplification assumes and what the sensitivity C of the sum of
clipped values holds for.

Pure epsilon-DP (Laplace noise with delta = 0) cannot come from a PLD or RDP accountant
(both leave a delta tail), so it uses the closed form: Poisson subsampling turns an
eps0-DP step into a log(1 + q(e^eps0 - 1))-DP step under add-or-remove (Balle et al. 2018),
and pure DP composes additively.

Three accountants for the Gaussian steps:

* ``pld`` (the default): dp_accounting's PLDAccountant, the tightest; the calibration
  returns the smallest multiplier whose epsilon is <= the target, to a relative tolerance.
* ``rdp``: dp_accounting's RdpAccountant at ``RDP_ORDERS``, same search; looser than PLD.
* ``opacus-rdp``: RDP with Opacus's orders and Opacus's ``get_noise_multiplier`` search,
  as the published DP baselines were calibrated (docs/dp-calibration.md). Opacus 1.4's
  RDPAccountant.DEFAULT_ALPHAS (1.1, 1.2, ..., 10.9, 12, ..., 63), the same Balle et al.
  (2020) RDP -> (epsilon, delta) conversion (dp_accounting's RdpAccountant uses it too), and
  the same search: start at 10, double until epsilon <= the target, then bisect on [0, high]
  until target - epsilon(high) <= 0.01 (an absolute tolerance in epsilon) and return high.
  The RDP of the subsampled Gaussian comes from dp_accounting. With a noisy count, the
  Gaussian part alone is calibrated to epsilon - count_epsilon (DP-AggZO's code: Gaussian at
  0.95 eps, the Laplace count at 0.05 eps, basic composition); without one, to the whole
  epsilon, as the DPZero paper's code calls get_noise_multiplier(target_epsilon). The epsilon
  reported is the Gaussian RDP epsilon at the same orders plus the count's epsilon.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dp_accounting
from dp_accounting import pld, rdp

from paczero.quiet import absl_quiet

ACCOUNTANTS = ("pld", "rdp", "opacus-rdp")
OPACUS = "opacus-rdp"
NOISES = ("gaussian", "laplace")
NEIGHBOURING = "add-or-remove-one"
PURE = "pure-dp"  # the closed-form accountant of Laplace noise at delta = 0
DEFAULT_RTOL = 1e-3
MAX_NOISE_MULTIPLIER = 1e4
# Opacus-style orders: the library default adds fractional orders 1.1..1.9 whose series
# converge slowly at small noise (5x slower calls for a ~0.2% tighter epsilon).
RDP_ORDERS = (1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5, *range(5, 64), 128, 256, 512)
# Opacus 1.4 RDPAccountant.DEFAULT_ALPHAS, written the same way so the floats are identical.
OPACUS_RDP_ORDERS = (*(1 + x / 10.0 for x in range(1, 100)), *range(12, 64))
OPACUS_START = 10.0  # get_noise_multiplier's sigma_high before its first doubling
OPACUS_EPSILON_TOLERANCE = 0.01  # get_noise_multiplier's default epsilon_tolerance

__all__ = [
    "ACCOUNTANTS",
    "NEIGHBOURING",
    "NOISES",
    "DPAccountant",
    "calibrate_noise_multiplier",
    "check_target",
    "dp_event",
    "epsilon_schedule",
    "epsilon_spent",
]


def check_target(
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    *,
    noise: str = "gaussian",
    accountant: str = "pld",
    count_epsilon: float = 0.0,
) -> None:
    """Raise ValueError with a one-line message for a target that cannot be meant."""
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    _check_common(delta, sample_rate, steps, noise, accountant, count_epsilon)
    if not count_epsilon < epsilon:
        raise ValueError(
            f"the noisy count's epsilon ({count_epsilon:g}) must be below the target "
            f"epsilon ({epsilon:g})"
        )


def _check_common(delta, sample_rate, steps, noise, accountant, count_epsilon) -> None:
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant must be one of {', '.join(ACCOUNTANTS)}, got {accountant!r}")
    pure_ok = noise == "laplace" and delta == 0
    if not (0.0 < delta < 1.0 or pure_ok):
        need = "[0, 1) for Laplace noise" if noise == "laplace" else "(0, 1)"
        raise ValueError(f"delta must be in {need}, got {delta!r}")
    if not 0.0 < sample_rate <= 1.0:
        raise ValueError(f"the sample rate must be in (0, 1], got {sample_rate!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not (math.isfinite(count_epsilon) and count_epsilon >= 0):
        raise ValueError(f"the noisy count's epsilon must be >= 0, got {count_epsilon!r}")
    if noise == "laplace" and accountant in ("rdp", OPACUS) and delta > 0:
        raise ValueError(
            f"the {accountant} accountant has no Poisson-subsampled Laplace; use accountant "
            "pld (or delta 0 for pure epsilon-DP)"
        )


def _check_spend(noise_multiplier, *common) -> None:
    """The checks of a spend: the common ones and a positive noise multiplier."""
    _check_common(*common)
    if not noise_multiplier > 0:
        raise ValueError(f"the noise multiplier must be > 0, got {noise_multiplier!r}")


def accountant_name(accountant: str, noise: str, delta: float) -> str:
    """The accountant actually used: pure epsilon-DP bypasses PLD/RDP."""
    return PURE if noise == "laplace" and delta == 0 else accountant


def dp_event(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    *,
    noise: str = "gaussian",
    count_epsilon: float = 0.0,
) -> dp_accounting.DpEvent:
    """T Poisson-subsampled noise events, after a Laplace count when count_epsilon > 0.

    The noise multiplier is the noise scale over the sensitivity: std / L2 sensitivity for
    Gaussian noise, Laplace scale / L1 sensitivity for Laplace noise.
    """
    base = (
        dp_accounting.GaussianDpEvent(noise_multiplier)
        if noise == "gaussian"
        else dp_accounting.LaplaceDpEvent(noise_multiplier)
    )
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sample_rate, base), steps
    )
    if count_epsilon > 0:
        count = dp_accounting.LaplaceDpEvent(1.0 / count_epsilon)  # a count has sensitivity 1
        event = dp_accounting.ComposedDpEvent([count, event])
    return event


def _fresh(accountant: str) -> dp_accounting.PrivacyAccountant:
    relation = dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
    if accountant == "pld":
        return pld.PLDAccountant(neighboring_relation=relation)
    orders = OPACUS_RDP_ORDERS if accountant == OPACUS else RDP_ORDERS
    return rdp.RdpAccountant(orders, neighboring_relation=relation)


def _pure_epsilon(noise_multiplier: float, sample_rate: float, steps: int, count_eps: float):
    step = math.log1p(sample_rate * math.expm1(1.0 / noise_multiplier))
    return steps * step + count_eps


def epsilon_spent(
    noise_multiplier: float,
    delta: float,
    sample_rate: float,
    steps: int,
    *,
    accountant: str = "pld",
    noise: str = "gaussian",
    count_epsilon: float = 0.0,
) -> float:
    """Epsilon at ``delta`` after ``steps`` steps (0 steps spend only the count, if any)."""
    if steps == 0:
        return float(count_epsilon)
    _check_spend(noise_multiplier, delta, sample_rate, steps, noise, accountant, count_epsilon)
    if accountant_name(accountant, noise, delta) == PURE:
        return _pure_epsilon(noise_multiplier, sample_rate, steps, count_epsilon)
    if accountant == OPACUS:  # the Gaussian steps in RDP, the count by basic composition
        steps_only = dp_event(noise_multiplier, sample_rate, steps, noise=noise)
        with absl_quiet():
            spent = _fresh(accountant).compose(steps_only).get_epsilon(delta)
        return float(spent) + count_epsilon
    event = dp_event(noise_multiplier, sample_rate, steps, noise=noise, count_epsilon=count_epsilon)
    with absl_quiet():
        return float(_fresh(accountant).compose(event).get_epsilon(delta))


def epsilon_schedule(
    noise_multiplier: float,
    delta: float,
    sample_rate: float,
    steps: int,
    *,
    accountant: str = "pld",
    noise: str = "gaussian",
    count_epsilon: float = 0.0,
    start: int = 1,
) -> Iterator[float]:
    """epsilon_spent(t) for t = start..steps, the same numbers, yielded in order.

    The schedule depends only on public quantities. RDP composes additively (the accountant
    holds count RDP + t x the step's RDP), so one step's RDP vector gives every t at the
    cost of the conversion. PLD is not prefix-friendly (self-composition is one FFT power
    per t, and incremental composition drifts from it), so each t is the accountant's own
    computation: ``DPAccountant.prepare`` runs this off the step, in a thread.
    """
    _check_spend(noise_multiplier, delta, sample_rate, steps, noise, accountant, count_epsilon)
    if not 1 <= start <= steps + 1:
        raise ValueError(f"the schedule starts at a step in 1..{steps + 1}, got {start!r}")
    mechanism = (noise_multiplier, delta, sample_rate, steps)
    return _schedule(*mechanism, accountant, noise, count_epsilon, start)


def _schedule(mu, delta, rate, steps, accountant, noise, count_epsilon, start) -> Iterator[float]:
    if accountant_name(accountant, noise, delta) == PURE:
        for t in range(start, steps + 1):
            yield _pure_epsilon(mu, rate, t, count_epsilon)
    elif accountant in ("rdp", OPACUS):
        yield from _rdp_schedule(mu, delta, rate, start, steps, accountant, count_epsilon)
    else:
        kw = {"accountant": accountant, "noise": noise, "count_epsilon": count_epsilon}
        for t in range(start, steps + 1):
            yield epsilon_spent(mu, delta, rate, t, **kw)


class _Filler:
    """Values of a schedule computed in order by a daemon thread while the run trains; a
    reader waits only for a value not computed yet. The thread starts at the first read, so
    that it does not slow the run's set-up (it holds the GIL between numpy calls). Holds no
    reference to its accountant, so a dropped accountant stops it (weakref.finalize)."""

    def __init__(self, values: Iterator[float], start: int):
        self.start, self.values, self.error = start, [], None
        self.done = threading.Condition()
        self.stopped = threading.Event()
        self._worker = threading.Thread(target=self._fill, args=(values,), daemon=True)
        self._worker.name = "paczero-epsilon"
        self._started = False

    def _fill(self, values: Iterator[float]) -> None:
        try:
            for value in values:
                if self.stopped.is_set():
                    return
                with self.done:
                    self.values.append(value)
                    self.done.notify_all()
        except BaseException as err:  # handed to the reader, who raises it
            with self.done:
                self.error = err
                self.done.notify_all()

    def get(self, steps: int) -> float:
        index = steps - self.start
        with self.done:
            if not self._started:
                self._started = True
                self._worker.start()
            self.done.wait_for(lambda: len(self.values) > index or self.error is not None)
            if len(self.values) > index:
                return self.values[index]
        raise RuntimeError(f"the epsilon schedule failed at step {steps}") from self.error


def _rdp_schedule(mu, delta, rate, first, steps, accountant, count_epsilon) -> Iterator[float]:
    """RdpAccountant after the count (if any) and t steps holds rdp(count) + t * rdp(step):
    the same vector epsilon_spent composes, converted by the accountant's own formula."""
    from dp_accounting.rdp.rdp_privacy_accountant import compute_epsilon

    step = _fresh(accountant)
    step.compose(dp_event(mu, rate, 1))
    start = _fresh(accountant)
    if count_epsilon > 0 and accountant != OPACUS:  # opacus-rdp adds the count afterwards
        start.compose(dp_accounting.LaplaceDpEvent(1.0 / count_epsilon))
    added = count_epsilon if accountant == OPACUS else 0.0
    # the accountant's own vectors and orders (private names, pinned by a test that compares
    # every t with epsilon_spent)
    orders, base, per_step = step._orders, start._rdp, step._rdp
    for t in range(first, steps + 1):
        with absl_quiet():
            yield float(compute_epsilon(orders, base + t * per_step, delta)[0]) + added


def _guess(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """A rough start for the bracket (moments-accountant scaling, floored at 0.5)."""
    log_term = math.log(1.0 / max(delta, 1e-12))
    return max(0.5, 2.0 * sample_rate * math.sqrt(steps * log_term) / epsilon)


def calibrate_noise_multiplier(
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    *,
    accountant: str = "pld",
    noise: str = "gaussian",
    count_epsilon: float = 0.0,
    rtol: float = DEFAULT_RTOL,
    max_noise_multiplier: float = MAX_NOISE_MULTIPLIER,
) -> float:
    """The smallest noise multiplier (to a relative tolerance) whose epsilon is <= the target.

    The answer is on the conservative side: epsilon_spent(result) <= epsilon always holds,
    and result is within ``rtol`` (relative) of the exact root. For ``opacus-rdp`` the
    answer is Opacus's get_noise_multiplier instead (its own tolerance; ``rtol`` unused).
    """
    check_target(
        epsilon,
        delta,
        sample_rate,
        steps,
        noise=noise,
        accountant=accountant,
        count_epsilon=count_epsilon,
    )
    kw = {"accountant": accountant, "noise": noise, "count_epsilon": count_epsilon}
    if accountant_name(accountant, noise, delta) == PURE:
        per_step = (epsilon - count_epsilon) / steps
        mu = 1.0 / math.log1p(math.expm1(per_step) / sample_rate)
        while _pure_epsilon(mu, sample_rate, steps, count_epsilon) > epsilon:
            mu = math.nextafter(mu, math.inf)
        return _cap(mu, epsilon, delta, sample_rate, steps, max_noise_multiplier)
    if accountant == OPACUS:
        cap = max_noise_multiplier
        return _opacus_search(epsilon, delta, sample_rate, steps, count_epsilon, cap)

    def gap(mu: float) -> float:
        return epsilon_spent(mu, delta, sample_rate, steps, **kw) - epsilon

    guess = _guess(epsilon, delta, sample_rate, steps)
    if accountant == "pld" and noise == "gaussian":
        # RDP is fast and looser than PLD, so its answer is a good upper end for PLD.
        guess = calibrate_noise_multiplier(
            epsilon,
            delta,
            sample_rate,
            steps,
            accountant="rdp",
            count_epsilon=count_epsilon,
            rtol=1e-2,
            max_noise_multiplier=math.inf,
        )
    if guess > max_noise_multiplier and gap(max_noise_multiplier) > 0:
        _unreachable(epsilon, delta, sample_rate, steps, max_noise_multiplier)
    guess = min(guess, max_noise_multiplier)
    lo, hi = _bracket(gap, guess, epsilon, delta, sample_rate, steps, max_noise_multiplier)
    return hi[0] if lo is None else _solve(gap, lo, hi, epsilon, rtol)


def _opacus_search(epsilon, delta, rate, steps, count_epsilon, cap) -> float:
    """Opacus's get_noise_multiplier for the Gaussian steps, at epsilon - count_epsilon.

    Double from OPACUS_START while epsilon(high) > target, then bisect on [0, high], keeping
    only midpoints whose epsilon is strictly below the target, until the target is within
    OPACUS_EPSILON_TOLERANCE of epsilon(high); return high. The result is always on the
    private side: epsilon(high) <= target.
    """
    target = epsilon - count_epsilon

    def gaussian_epsilon(mu: float) -> float:
        return epsilon_spent(mu, delta, rate, steps, accountant=OPACUS)

    low, high, eps_high = 0.0, OPACUS_START, math.inf
    while eps_high > target:
        high *= 2.0
        if high > cap:
            _unreachable(epsilon, delta, rate, steps, cap)
        eps_high = gaussian_epsilon(high)
    while target - eps_high > OPACUS_EPSILON_TOLERANCE:
        mid = (low + high) / 2.0
        eps_mid = gaussian_epsilon(mid)
        if eps_mid < target:
            high, eps_high = mid, eps_mid
        else:
            low = mid
    return high


def _bracket(gap, guess, epsilon, delta, rate, steps, cap):
    """((lo, gap), (hi, gap)) with gap(lo) > 0 >= gap(hi); lo None when hi is already tiny."""
    factor = 1.1
    hi, g_hi = guess, gap(guess)
    if g_hi > 0:
        lo, g_lo = hi, g_hi
        while True:
            hi = lo * factor
            if hi > cap:
                _unreachable(epsilon, delta, rate, steps, cap)
            g_hi = gap(hi)
            if g_hi <= 0:
                return (lo, g_lo), (hi, g_hi)
            lo, g_lo, factor = hi, g_hi, factor * 1.5
    while True:
        lo = hi / factor
        if lo < 1e-3:
            return None, (hi, g_hi)
        g_lo = gap(lo)
        if g_lo > 0:
            return (lo, g_lo), (hi, g_hi)
        hi, g_hi, factor = lo, g_lo, factor * 1.5


def _solve(gap, lo_pair, hi_pair, epsilon, rtol) -> float:
    """Shrink the bracket to a relative width rtol and return its upper (private) end.

    log(epsilon) is close to linear in log(mu), so a secant step in log-log space followed
    by probes just either side of its prediction usually closes the bracket in 2-4 calls
    (dp_accounting.calibrate_dp_mechanism takes an absolute tolerance and ~2x the calls).
    """
    (lo, g_lo), (hi, g_hi) = lo_pair, hi_pair

    def y(g: float) -> float:
        return math.log(max(g + epsilon, 1e-300) / epsilon)  # an accountant may return 0

    for _ in range(60):
        if hi <= lo * (1.0 + rtol):
            return hi
        y_lo, y_hi = y(g_lo), y(g_hi)
        x_lo, x_hi = math.log(lo), math.log(hi)
        guess = math.exp(x_lo - y_lo * (x_hi - x_lo) / (y_hi - y_lo)) if y_hi < y_lo else None
        if guess is None or not lo < guess < hi:
            guess = math.sqrt(lo * hi)
        shrunk = False
        for probe in (guess * (1.0 + rtol / 3), guess / (1.0 + rtol / 3)):
            if not lo < probe < hi:
                continue
            g = gap(probe)
            if g <= 0:
                hi, g_hi = probe, g
            else:
                lo, g_lo = probe, g
                shrunk = True
                break
        if not shrunk and hi > lo * (1.0 + rtol):  # the prediction was off: bisect once
            mid = math.sqrt(lo * hi)
            g = gap(mid)
            if g <= 0:
                hi, g_hi = mid, g
            else:
                lo, g_lo = mid, g
    return hi


def _cap(mu, epsilon, delta, rate, steps, cap) -> float:
    if mu > cap:
        _unreachable(epsilon, delta, rate, steps, cap)
    return mu


def _unreachable(epsilon, delta, rate, steps, cap) -> None:
    raise ValueError(
        f"target epsilon {epsilon:g} (delta {delta:g}) is out of reach over {steps} steps at "
        f"sample rate {rate:g}: it needs a noise multiplier above {cap:g}; use fewer steps, "
        "a smaller expected batch or a larger epsilon"
    )


@dataclass
class DPAccountant:
    """The calibrated mechanism of one run; answers epsilon after any number of steps."""

    noise_multiplier: float
    delta: float
    sample_rate: float
    steps: int  # planned T, the horizon the noise was calibrated for
    accountant: str = "pld"
    noise: str = "gaussian"
    count_epsilon: float = 0.0
    target_epsilon: float | None = None
    calibration_s: float | None = None
    _cache: dict[int, float] = field(default_factory=dict, repr=False, compare=False)
    _schedule: _Filler | None = field(default=None, repr=False, compare=False)

    @classmethod
    def calibrate(
        cls,
        epsilon: float,
        delta: float,
        sample_rate: float,
        steps: int,
        *,
        accountant: str = "pld",
        noise: str = "gaussian",
        count_epsilon: float = 0.0,
        rtol: float = DEFAULT_RTOL,
    ) -> DPAccountant:
        import time

        started = time.perf_counter()
        mu = calibrate_noise_multiplier(
            epsilon,
            delta,
            sample_rate,
            steps,
            accountant=accountant,
            noise=noise,
            count_epsilon=count_epsilon,
            rtol=rtol,
        )
        return cls(
            noise_multiplier=mu,
            delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=accountant,
            noise=noise,
            count_epsilon=count_epsilon,
            target_epsilon=float(epsilon),
            calibration_s=time.perf_counter() - started,
        )

    @property
    def method(self) -> str:
        return accountant_name(self.accountant, self.noise, self.delta)

    def prepare(self, start: int = 1) -> None:
        """Compute epsilon after each planned step from ``start`` on, in order, in a
        background thread from the first step's read on, so that no step composes a PLD and
        start-up does not wait for the whole schedule (99 s at T = 1000 with pld). A resumed
        run prepares again from its next step; the previous filler stops."""
        if self._schedule is not None:
            if self._schedule.start == start:
                return
            self._schedule.stopped.set()
        values = epsilon_schedule(
            self.noise_multiplier,
            self.delta,
            self.sample_rate,
            self.steps,
            accountant=self.accountant,
            noise=self.noise,
            count_epsilon=self.count_epsilon,
            start=start,
        )
        self._schedule = _Filler(values, start)
        weakref.finalize(self, self._schedule.stopped.set)

    def epsilon(self, steps: int) -> float:
        """Epsilon spent after ``steps`` steps: from the schedule once prepare() started it
        (waiting for a value not computed yet), else from the accountant (memoised)."""
        steps = int(steps)
        if self._schedule is not None and self._schedule.start <= steps <= self.steps:
            return self._schedule.get(steps)
        if steps not in self._cache:
            self._cache[steps] = epsilon_spent(
                self.noise_multiplier,
                self.delta,
                self.sample_rate,
                steps,
                accountant=self.accountant,
                noise=self.noise,
                count_epsilon=self.count_epsilon,
            )
        return self._cache[steps]

    def state_dict(self) -> dict[str, Any]:
        return {
            "noise_multiplier": self.noise_multiplier,
            "delta": self.delta,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "accountant": self.accountant,
            "noise": self.noise,
            "count_epsilon": self.count_epsilon,
            "target_epsilon": self.target_epsilon,
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> DPAccountant:
        return cls(**state)
