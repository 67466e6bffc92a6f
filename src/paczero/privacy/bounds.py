"""What a privacy budget means to a membership-inference attacker, for PAC-MI and for DP.

Both guarantees are turned into the same number, a bound on the attacker's posterior success
(docs/algorithms.md 6.1 and 6.3), so that an MI budget can be matched with a DP epsilon. They bound
different games: the matching compares the stated bounds, not the threat models.
All MI values are in nats.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq
from scipy.special import expit

from .channels import _kl_split, kl_bernoulli

__all__ = [
    "mi_to_posterior_bound",
    "epsilon_to_posterior_bound",
    "posterior_bound_to_mi",
    "posterior_bound_to_epsilon",
    "mi_to_epsilon",
    "epsilon_to_mi",
    "pinsker_bound",
    "privacy_summary",
    "describe_summary",
]

PRIOR = 0.5


def _check_mi(mi: float) -> float:
    mi = float(mi)
    if not mi >= 0.0:  # also rejects nan
        raise ValueError(f"mi must be >= 0 nats, got {mi!r}")
    return mi


def _check_epsilon(epsilon: float) -> float:
    epsilon = float(epsilon)
    if not epsilon >= 0.0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    return epsilon


def _check_delta(delta: float) -> float:
    delta = float(delta)
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta!r}")
    return delta


def _check_prior(prior: float) -> float:
    prior = float(prior)
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be in (0, 1), got {prior!r}")
    return prior


def _kl_up(prior: float, d: float) -> float:
    """KL(Bern(prior + d) || Bern(prior)) from the advantage d, so tiny d keeps its precision."""
    return _kl_split(prior + d, (1.0 - prior) - d, prior, 1.0 - prior, d)


def _advantage(mi: float, prior: float) -> float:
    """x* - prior for the MI bound (docs/algorithms.md 6.1), rounded up so the bound stays valid."""
    if mi == 0.0:
        return 0.0
    room = 1.0 - prior
    if mi >= -math.log(prior):  # KL(Bern(1) || Bern(prior)), the largest value KL can take
        return room
    d = brentq(lambda t: _kl_up(prior, t) - mi, 0.0, room, xtol=1e-300, rtol=8.9e-16)
    # brentq may land either side of the root; step up to the first float with KL >= mi.
    while d < room and _kl_up(prior, d) < mi:
        d = math.nextafter(d, math.inf)
    return min(d, room)


def mi_to_posterior_bound(mi: float, prior: float = PRIOR) -> float:
    """The attacker's largest possible success rate under an MI budget: the largest x >= prior
    with KL(Bern(x) || Bern(prior)) <= mi."""
    mi = _check_mi(mi)
    prior = _check_prior(prior)
    x = min(prior + _advantage(mi, prior), 1.0)
    # prior + d can round down; the bound handed out must itself satisfy KL(x) >= mi.
    while x < 1.0 and _kl_split(x, 1.0 - x, prior, 1.0 - prior, x - prior) < mi:
        x = math.nextafter(x, 1.0)
    return x


def posterior_bound_to_mi(x: float, prior: float = PRIOR) -> float:
    """KL(Bern(x) || Bern(prior)): the MI budget whose bound is x (for x >= prior)."""
    x = float(x)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"posterior bound must be in [0, 1], got {x!r}")
    prior = _check_prior(prior)
    return _kl_split(x, 1.0 - x, prior, 1.0 - prior, x - prior)


def epsilon_to_posterior_bound(epsilon: float, delta: float = 0.0) -> float:
    """(e^eps + delta) / (1 + e^eps): balanced MIA accuracy under (eps, delta)-DP, prior 1/2.

    Written as 1 - (1 - delta) * sigmoid(-eps), which neither overflows nor loses digits.
    """
    epsilon = _check_epsilon(epsilon)
    delta = _check_delta(delta)
    return min(1.0 - (1.0 - delta) * float(expit(-epsilon)), 1.0)


def posterior_bound_to_epsilon(x: float, delta: float = 0.0) -> float:
    """The epsilon whose (eps, delta) bound is x; 0 when even eps = 0 gives a weaker bound."""
    x = float(x)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"posterior bound must be in [0, 1], got {x!r}")
    delta = _check_delta(delta)
    if x >= 1.0:
        return math.inf
    # ln((x - delta) / (1 - x)) = log1p((2x - 1 - delta) / (1 - x)): exact as x -> 1/2.
    gain = (2.0 * x - 1.0) - delta
    return math.log1p(gain / (1.0 - x)) if gain > 0.0 else 0.0


def mi_to_epsilon(mi: float, delta: float = 0.0) -> float:
    """Matched epsilon: the (eps, delta) whose MIA bound equals the MI bound (prior 1/2)."""
    mi = _check_mi(mi)
    delta = _check_delta(delta)
    d = _advantage(mi, PRIOR)
    rest = PRIOR - d  # 1 - x*
    if rest <= 0.0:
        return math.inf
    gain = 2.0 * d - delta
    return math.log1p(gain / rest) if gain > 0.0 else 0.0


def epsilon_to_mi(epsilon: float, delta: float = 0.0) -> float:
    """Matched MI: KL(Bern(psr) || Bern(1/2)) with psr the (eps, delta) MIA bound."""
    epsilon = _check_epsilon(epsilon)
    delta = _check_delta(delta)
    tail = float(expit(-epsilon))
    d = 0.5 * math.tanh(0.5 * epsilon) + delta * tail  # psr - 1/2 without cancellation
    if d >= PRIOR:
        return math.log(2.0)
    return _kl_split(PRIOR + d, (1.0 - delta) * tail, PRIOR, PRIOR, d)


def pinsker_bound(mi: float) -> float:
    """1/2 + sqrt(mi/2): the looser Pinsker form of the MI bound, for reference."""
    mi = _check_mi(mi)
    return min(PRIOR + math.sqrt(mi / 2.0), 1.0)


def privacy_summary(
    mi: float | None = None, epsilon: float | None = None, delta: float = 0.0
) -> dict:
    """The bound a budget gives, and the matched budget in the other framework (CLI backend)."""
    if (mi is None) == (epsilon is None):
        raise ValueError("give exactly one of mi (PAC-MI budget, nats) or epsilon (DP)")
    delta = _check_delta(delta)
    if mi is not None:
        mi = _check_mi(mi)
        return {
            "framework": "pac-mi",
            "mi": mi,
            "epsilon": mi_to_epsilon(mi, delta),
            "delta": delta,
            "posterior_bound": mi_to_posterior_bound(mi),
            "prior": PRIOR,
        }
    epsilon = _check_epsilon(epsilon)
    return {
        "framework": "dp",
        "mi": epsilon_to_mi(epsilon, delta),
        "epsilon": epsilon,
        "delta": delta,
        "posterior_bound": epsilon_to_posterior_bound(epsilon, delta),
        "prior": PRIOR,
    }


def _fmt_bound(x: float, prior: float) -> str:
    # Four decimals, unless that would round a real (tiny) advantage away.
    return f"{x:.4f}" if x - prior >= 5e-4 else f"{x:.8f}"


def describe_summary(summary: dict) -> str:
    """A few plain-English lines for the terminal."""
    prior = summary["prior"]
    bound = _fmt_bound(summary["posterior_bound"], prior)
    delta = f"{summary['delta']:g}"
    if summary["framework"] == "pac-mi":
        lines = [
            f"MI budget {summary['mi']:.4g} nats: a membership-inference attacker's posterior "
            f"success is at most {bound} (prior {prior:g}).",
            f"Matched DP epsilon: {summary['epsilon']:.3g} (delta {delta}).",
            "Covers: whether a pool example is in the secret subset S*, against an attacker who "
            "knows the pool and the candidate subsets; it does not protect the pool itself "
            "from the outside world.",
        ]
    else:
        lines = [
            f"DP epsilon {summary['epsilon']:.4g} (delta {delta}): a membership-inference "
            f"attacker's balanced accuracy is at most {bound} (prior {prior:g}).",
            f"Matched PAC-MI budget: {summary['mi']:.4g} nats.",
            "Covers: each record's membership in the training data against the outside world, "
            "in the worst case over neighbouring datasets.",
        ]
    lines.append(
        "The match compares the two bounds on attacker success, not identical threat models."
    )
    return "\n".join(lines)


def kl_upper_inverse(p0: float, budget: float) -> float:
    """The largest p >= p0 with KL(Bern(p) || Bern(p0)) <= budget (1 if none is too large).

    Data processing: if I(S*; O) <= budget, any event about (S*, O) whose probability is
    p0 when O is independent of S* has probability at most this.
    """
    p0, budget = float(p0), float(budget)
    if not 0.0 <= p0 <= 1.0:
        raise ValueError(f"p0 must be in [0, 1], got {p0!r}")
    if not budget >= 0.0:
        raise ValueError(f"budget must be >= 0 nats, got {budget!r}")
    if p0 >= 1.0:
        return 1.0
    if p0 <= 0.0:
        return 1.0 - math.exp(-budget)  # KL(Bern(p) || Bern(0)) is infinite unless p = 0
    if budget == 0.0:
        return p0
    if budget >= -math.log(p0):  # KL(Bern(1) || Bern(p0))
        return 1.0
    p = brentq(lambda x: kl_bernoulli(x, p0) - budget, p0, 1.0, xtol=1e-15, rtol=1e-15)
    while p < 1.0 and kl_bernoulli(p, p0) < budget:  # round up: the bound must hold
        p = math.nextafter(p, 2.0)
    return min(p, 1.0)


def identification_bound(mi: float, m: int) -> float:
    """The most often any attacker names S* among ``m`` uniform candidates when I <= mi.

    KL(Bern(P) || Bern(1/m)) <= I (data processing on the indicator "guess = S*", whose
    probability is exactly 1/m when the output is independent of S*): the tight form of
    Fano's inequality for this one event.
    """
    if m < 1:
        raise ValueError(f"need at least one candidate, got {m}")
    return kl_upper_inverse(1.0 / m, mi)


def fano_bound(mi: float, m: int) -> float:
    """Fano's inequality: P(naming S* among m candidates) <= (I + ln 2) / ln m (capped at 1)."""
    if m < 2:
        return 1.0
    return min(1.0, (float(mi) + math.log(2.0)) / math.log(m))
