"""The statistics of the audit: turning a count of correct guesses into a bound.

Pure functions, no torch (docs/audit.md 3):

- ``snj_p_value`` / ``snj_epsilon_lower_bound``: the one-run auditing theorem of Steinke,
  Nasr and Jagielski (NeurIPS 2023, Theorem 3.1) for m examples each included
  *independently* with probability 1/2 (DP canaries).
- ``rank_mi_lower_bound``: a one-run lower bound on I(S*; output) from the rank of the secret
  subset among the M candidates, valid for any dependence between examples (PACZero, where
  membership is a function of the one secret index S*).
- ``identification_bound`` / ``fano_bound``: how often an attacker can name S* when
  I(S*; output) <= B.
- Clopper-Pearson and Hoeffding intervals for success rates.
"""

from __future__ import annotations

import math

from scipy.stats import beta, binom

from paczero.privacy.bounds import (  # noqa: F401 (the audit's names for them)
    fano_bound,
    identification_bound,
    kl_upper_inverse,
    mi_to_epsilon,
)
from paczero.privacy.channels import kl_bernoulli

__all__ = [
    "clopper_pearson",
    "fano_bound",
    "hoeffding_interval",
    "identification_bound",
    "kl_upper_inverse",
    "logit_epsilon",
    "rank_mi_lower_bound",
    "rank_epsilon_lower_bound",
    "snj_epsilon_lower_bound",
    "snj_p_value",
]

EPS_MAX = 64.0  # no count of guesses in this library can certify more than this


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha (1 - confidence) must be in (0, 1), got {alpha!r}")
    return alpha


def snj_p_value(m: int, r: int, v: int, epsilon: float, delta: float = 0.0) -> float:
    """P[at least v of r guesses are correct] under the null "(epsilon, delta)-DP".

    Steinke, Nasr and Jagielski (2023), Theorem 3.1: m examples, each included
    independently with probability 1/2; an attacker makes r guesses (r fixed in advance,
    abstaining on the others) as any function of the output. If the algorithm is
    (epsilon, delta)-DP under add-or-remove of one example, the number of correct guesses
    W' satisfies, with W ~ Binomial(r, e^eps / (1 + e^eps)),

        P[W' >= v] <= P[W >= v] + 2 m delta max_{1 <= i <= v} P[v - i <= W < v] / i.
    """
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    if not epsilon >= 0.0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
    if not 0.0 <= delta <= 1.0:
        raise ValueError(f"delta must be in [0, 1], got {delta!r}")
    if v == 0:
        return 1.0
    q = 1.0 / (1.0 + math.exp(-epsilon))  # accuracy of epsilon-DP randomized response
    tail = float(binom.sf(v - 1, r, q))  # P[W >= v]
    extra = 0.0
    if delta > 0.0:
        below, worst = 0.0, 0.0  # below = P[v - i <= W < v]
        for i in range(1, v + 1):
            below += float(binom.pmf(v - i, r, q))
            worst = max(worst, below / i)
        extra = 2.0 * m * delta * worst
    return min(tail + extra, 1.0)


def snj_epsilon_lower_bound(
    m: int, r: int, v: int, delta: float = 0.0, alpha: float = 0.05, tol: float = 1e-6
) -> float:
    """The largest epsilon that ``v`` correct of ``r`` guesses rejects at level ``alpha``.

    With probability at least 1 - alpha over the inclusions and the algorithm's randomness,
    an (epsilon, delta)-DP algorithm does not produce a count whose bound exceeds epsilon.
    Returns 0 when even epsilon = 0 is not rejected (the guesses did no better than chance).
    """
    alpha = _check_alpha(alpha)
    if snj_p_value(m, r, v, 0.0, delta) >= alpha:
        return 0.0
    lo, hi = 0.0, 1.0  # p(lo) < alpha <= p(hi): the p-value grows with epsilon
    while snj_p_value(m, r, v, hi, delta) < alpha:
        lo, hi = hi, 2.0 * hi
        if hi > EPS_MAX:
            return EPS_MAX
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if snj_p_value(m, r, v, mid, delta) < alpha:
            lo = mid
        else:
            hi = mid
    return lo  # the safe end: still rejected


def rank_mi_lower_bound(p_value: float, alpha: float = 0.05) -> float:
    """A one-run lower bound on I(S*; O) from a p-value under "O independent of S*".

    ``p_value`` is rank / M, where rank counts the candidates scored at least as high as S*
    (ties against the attacker): if O is independent of S*, P[rank / M <= u] <= u for every
    u. Under I(S*; O) <= B, data processing gives P[rank / M <= u] <= kl_upper_inverse(u, B).
    Hence B_lb = KL(Bern(alpha) || Bern(p_value)) (0 when p_value >= alpha) satisfies
    P[B_lb > I] <= alpha: a valid lower confidence bound, whatever the dependence between
    examples. It cannot exceed KL(Bern(alpha) || Bern(1/M)): one run holds one draw of S*.
    """
    alpha = _check_alpha(alpha)
    p_value = float(p_value)
    if not 0.0 < p_value <= 1.0:
        raise ValueError(f"p_value must be in (0, 1], got {p_value!r}")
    if p_value >= alpha:
        return 0.0
    return kl_bernoulli(alpha, p_value)


def rank_epsilon_lower_bound(p_value: float, alpha: float = 0.05) -> float:
    """``rank_mi_lower_bound`` as a matched epsilon (docs/algorithms.md 6.3), comparable
    with the run's matched epsilon: mi_to_epsilon is increasing, so the epsilon bound
    exceeds the matched epsilon exactly when the MI bound exceeds the budget."""
    return mi_to_epsilon(rank_mi_lower_bound(p_value, alpha))


def logit_epsilon(success: float) -> float:
    """The epsilon whose membership bound e^eps / (1 + e^eps) is ``success`` (0 at or below
    chance): a lower bound on the matched epsilon when ``success`` lower-bounds an
    attacker's expected success."""
    success = float(success)
    if success <= 0.5:
        return 0.0
    if success >= 1.0:
        return math.inf
    return math.log(success / (1.0 - success))


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact two-sided (1 - alpha) interval for a binomial proportion k / n."""
    alpha = _check_alpha(alpha)
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def clopper_pearson_lower(k: int, n: int, alpha: float = 0.05) -> float:
    """Exact one-sided (1 - alpha) lower confidence bound for a binomial proportion."""
    alpha = _check_alpha(alpha)
    if k == 0 or n == 0:
        return 0.0
    return float(beta.ppf(alpha, k, n - k + 1))


def hoeffding_interval(mean: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided (1 - alpha) interval for the mean of n independent values in [0, 1]."""
    alpha = _check_alpha(alpha)
    if n < 1:
        return 0.0, 1.0
    half = math.sqrt(math.log(2.0 / alpha) / (2.0 * n))
    return max(0.0, mean - half), min(1.0, mean + half)


def hoeffding_lower(mean: float, n: int, alpha: float = 0.05) -> float:
    """One-sided (1 - alpha) lower bound for the mean of n independent values in [0, 1]."""
    alpha = _check_alpha(alpha)
    if n < 1:
        return 0.0
    return max(0.0, mean - math.sqrt(math.log(1.0 / alpha) / (2.0 * n)))
