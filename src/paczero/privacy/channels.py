"""Mutual information of the binary releases PACZero makes, and the noise that meets a budget.

All values are in nats. Each function is accurate to a relative error of about 1e-12 over its
whole range, including the regimes where the naive formula is a small difference of two large
numbers: the charge for a step must never be understated, and tiny budgets (1e-12 nats) are
real use cases (see docs/algorithms.md 5.4 and 9.1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.special import roots_hermitenorm, xlogy

__all__ = [
    "binary_entropy",
    "kl_bernoulli",
    "biawgn_mi",
    "calibrate_biawgn_sigma",
    "bsc_mi",
    "calibrate_bsc_flip",
    "binary_release_mi",
]

# Below this |u| the series replace u - log1p(u) and (1+u)log1p(u) - u, which cancel badly.
_SERIES_CUT = 0.1
# 18 terms: the first omitted term is < 1e-18 of the leading u**2/2 for |u| < 0.1.
_PSI_COEF = tuple((-1.0) ** k / k for k in range(2, 20))  # u - log1p(u)
_PHI_COEF = tuple((-1.0) ** k / (k * (k - 1)) for k in range(2, 20))  # (1+u)log1p(u) - u

# Gauss-Hermite (probabilists') nodes for E over a standard normal. 80 nodes reach 5e-15 relative
# error for sigma >= _GH_MIN_SIGMA, checked against mpmath; below it the integrand has poles
# too close to the real axis and the deficit form takes over.
_GH_N = 80
_GH_X, _GH_W = roots_hermitenorm(_GH_N)
_GH_W = _GH_W / math.sqrt(2.0 * math.pi)
_GH_MIN_SIGMA = 1.5
# Composite Gauss-Legendre rule for the deficit integral.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(24)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _check_prob(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return value


def _horner(coef: tuple[float, ...], u):
    acc = coef[-1]
    for c in coef[-2::-1]:
        acc = acc * u + c
    return acc


def binary_entropy(p: float) -> float:
    """H_b(p) in nats; xlogy/log1p keep full relative accuracy for p near 0 or 1."""
    p = _check_prob("p", p)
    if p == 0.0 or p == 1.0:
        return 0.0
    return float(-xlogy(p, p) - (1.0 - p) * math.log1p(-p))


def _phi(u: float, t: float) -> float:
    """t ln t - t + 1 at t = 1 + u (>= 0); the series avoids cancellation when t is near 1."""
    if abs(u) < _SERIES_CUT:
        return u * u * _horner(_PHI_COEF, u)
    return float(xlogy(t, t)) - t + 1.0


def _kl_split(x: float, xc: float, p: float, pc: float, d: float) -> float:
    """KL(Bern(x) || Bern(p)) given the complements and d = x - p, each computed exactly.

    Written as p*phi(x/p) + (1-p)*phi((1-x)/(1-p)): two non-negative terms, so nothing cancels
    even when x is within rounding of p.
    """
    if p == 0.0:
        return 0.0 if x == 0.0 else math.inf
    if pc == 0.0:
        return 0.0 if xc == 0.0 else math.inf
    return p * _phi(d / p, x / p) + pc * _phi(-d / pc, xc / pc)


def kl_bernoulli(x: float, p: float) -> float:
    """KL(Bern(x) || Bern(p)) in nats, accurate when x is close to p (tiny divergences)."""
    x = _check_prob("x", x)
    p = _check_prob("p", p)
    return _kl_split(x, 1.0 - x, p, 1.0 - p, x - p)


# ---------------------------------------------------------------------------------------------
# Binary-input Gaussian channel
# ---------------------------------------------------------------------------------------------


def _psi_vec(u: np.ndarray) -> np.ndarray:
    """u - log1p(u) >= 0, elementwise, without cancellation at small |u|."""
    small = np.abs(u) < _SERIES_CUT
    us = np.where(small, u, 0.0)
    series = us * us * _horner(_PSI_COEF, us)
    ub = np.where(small, 1.0, u)
    return np.where(small, series, ub - np.log1p(ub))


def _biawgn_mi_gh(q: float, p: float, sigma: float) -> float:
    """MI as a mixture of KL divergences, each written as E[t - 1 - ln t] with t the density ratio.

    The integrand is non-negative pointwise, so the result keeps its relative accuracy when the
    MI is ~2q(1-q)/sigma^2 and tiny (the plain log form cancels to O(1/sigma) there).
    With L = 2/sigma^2 + (2/sigma) x the log-likelihood ratio, t = q + p*e^{-L} for input +1
    and p + q*e^{-L} for input -1.
    """
    m = 2.0 / (sigma * sigma)
    e = np.expm1(-(m + math.sqrt(2.0 * m) * _GH_X))
    vals = _psi_vec(np.concatenate((p * e, q * e)))
    return max(q * float(np.dot(_GH_W, vals[:_GH_N])) + p * float(np.dot(_GH_W, vals[_GH_N:])), 0.0)


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _log_softplus_vec(x: np.ndarray) -> np.ndarray:
    """log(log1p(e^x)) without underflow for very negative x."""
    t = np.exp(np.minimum(x, -20.0))
    tiny = x + np.log1p(t * (-0.5 + t / 3.0))
    return np.where(x < -20.0, tiny, np.log(np.logaddexp(0.0, np.maximum(x, -20.0))))


def _log_softplus(x: float) -> float:
    if x < -20.0:
        t = math.exp(x)
        return x + math.log1p(t * (-0.5 + t / 3.0))
    return math.log(_softplus(x))


def _deficit_share(q: float, p: float, m: float) -> float:
    """q * E[-ln P(b=+1 | R) | b=+1]: input +1's share of the equivocation H(b | R).

    In terms of the posterior log-odds lam ~ N(logit q + m, 2m) the integrand is
    q * N(lam) * softplus(-lam), which is log-concave: find its mode, walk out until it has
    dropped by e^-50, and integrate the window with Gauss-Legendre panels no wider than the
    distance (pi) to the nearest pole of softplus. The window stays O(100) wide however small
    sigma gets, where a fixed Gauss-Hermite rule would miss the mass entirely.
    """
    var = 2.0 * m
    mu = math.log(q) - math.log(p) + m

    def logf(lam: float) -> float:
        return -((lam - mu) ** 2) / (2.0 * var) + _log_softplus(-lam)

    def dlogf(lam: float) -> float:
        sp = _softplus(-lam)
        ratio = math.exp(-lam - sp) / sp if sp > 0.0 else 1.0  # sigmoid(-lam) / softplus(-lam)
        return -(lam - mu) / var - ratio

    # The mode lies in [mu - var, mu] because 0 < ratio <= 1.
    lo, hi = mu - var - 1.0, mu
    while hi - lo > 1e-3:
        mid = 0.5 * (lo + hi)
        if dlogf(mid) > 0.0:
            lo = mid
        else:
            hi = mid
    mode = 0.5 * (lo + hi)
    floor = logf(mode) - 50.0

    def reach(direction: float) -> float:
        step = 1.0
        while logf(mode + direction * step) > floor:
            step *= 2.0
        inner, outer = 0.5 * step, step
        while outer - inner > 0.05 * outer:
            mid = 0.5 * (inner + outer)
            if logf(mode + direction * mid) > floor:
                inner = mid
            else:
                outer = mid
        return mode + direction * outer

    left, right = reach(-1.0), reach(1.0)
    width = min(2.0, math.sqrt(var))
    n = min(4000, max(1, math.ceil((right - left) / width)))
    edges = np.linspace(left, right, n + 1)
    half = 0.5 * float(edges[1] - edges[0])
    lam = (0.5 * (edges[:-1] + edges[1:]))[:, None] + half * _GL_X[None, :]
    logv = -((lam - mu) ** 2) / (2.0 * var) + _log_softplus_vec(-lam)
    logv += math.log(q) - 0.5 * math.log(var) - _LOG_SQRT_2PI
    return half * float(np.sum(np.exp(logv) * _GL_W[None, :]))


def _biawgn_mi_deficit(q: float, p: float, sigma: float) -> float:
    """H_b(q) - H(b | R), for small sigma where MI is close to H_b(q) and nothing cancels."""
    h = binary_entropy(q)
    if sigma < 1e-100:
        return h
    m = 2.0 / (sigma * sigma)
    # softplus(-lam) <= 2 e^{-lam/2} bounds H(b | R) by 4 sqrt(q(1-q)) e^{-m/4}; skip the
    # integral (and its overflow for tiny sigma) once that is below e^-40 of H_b(q).
    if math.log(4.0) + 0.5 * (math.log(q) + math.log(p)) - 0.25 * m < math.log(h) - 40.0:
        return h
    deficit = _deficit_share(q, p, m) + _deficit_share(p, q, m)
    return max(h - deficit, 0.0)


def biawgn_mi(q: float, sigma: float) -> float:
    """I(b; b + sigma*xi) for b in {+1, -1} with P(+1) = q: the charge of PACZero-MI's release.

    Exact up to ~1e-13 relative for every sigma (docs/algorithms.md 5.4), never negative.
    """
    q = _check_prob("q", q)
    sigma = float(sigma)
    if not sigma >= 0.0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    p = 1.0 - q
    if q == 0.0 or p == 0.0 or sigma == math.inf:
        return 0.0
    if sigma == 0.0:
        return binary_entropy(q)
    return _biawgn(q, p, sigma)


def _biawgn(q: float, p: float, sigma: float) -> float:
    if sigma >= _GH_MIN_SIGMA:
        return _biawgn_mi_gh(q, p, sigma)
    return _biawgn_mi_deficit(q, p, sigma)


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


def _solve_budget(
    mi_at: Callable[[float], tuple[float, float]],
    x_start: float,
    step: float,
    budget: float,
    ceiling: float,
    rtol: float,
) -> float:
    """Return the parameter of a point with budget*(1-rtol) <= MI <= budget, or the safe end.

    mi_at(x) gives (the parameter as it will be returned, its MI), with MI increasing in x;
    ceiling is the noise-free MI. The bracket is found by stepping from x_start by step, and
    then keeps one end verified at MI <= budget (safe) and one at MI > budget, and the
    answer is always the safe end, so the budget is never overspent whatever the tolerance.
    Steps are Illinois regula falsi on ln(MI / (ceiling - MI)), which is nearly linear in x both
    at small SNR and close to saturation, aimed at the middle of the window; bisection takes
    over when a step leaves the bracket.
    """
    target = budget * (1.0 - rtol)
    aim = budget * (1.0 - 0.5 * rtol)
    log_aim = math.log(aim) - math.log(ceiling - aim)

    def f(mi: float) -> float:
        if mi <= 0.0:
            return -math.inf
        if mi >= ceiling:
            return math.inf
        return math.log(mi) - math.log(ceiling - mi) - log_aim

    x_safe = x_unsafe = x_start
    par_s, mi_s = par_u, mi_u = mi_at(x_start)
    if mi_s <= budget:
        while mi_u <= budget:
            x_safe, par_s, mi_s = x_unsafe, par_u, mi_u
            x_unsafe = x_unsafe + step
            par_u, mi_u = mi_at(x_unsafe)
    else:
        while mi_s > budget:
            x_unsafe, par_u, mi_u = x_safe, par_s, mi_s
            x_safe = x_safe - step
            par_s, mi_s = mi_at(x_safe)
    fs, fu = f(mi_s), f(mi_u)
    side = 0
    for _ in range(300):
        if mi_s >= target:
            break
        mid = 0.5 * (x_safe + x_unsafe)
        x = mid
        if math.isfinite(fs) and math.isfinite(fu):
            x = x_safe - fs * (x_unsafe - x_safe) / (fu - fs)
            if not min(x_safe, x_unsafe) < x < max(x_safe, x_unsafe):
                x = mid
        par, mi = mi_at(x)
        if par in (par_s, par_u):
            x = mid
            par, mi = mi_at(x)
            if par in (par_s, par_u):
                break  # the bracket is down to adjacent representable parameters
        if mi <= budget:
            x_safe, par_s, mi_s, fs = x, par, mi, f(mi)
            if side == 1:
                fu *= 0.5
            side = 1
        else:
            x_unsafe, par_u, mi_u, fu = x, par, mi, f(mi)
            if side == -1:
                fs *= 0.5
            side = -1
    return par_s


def _check_budget_args(q: float, budget: float, rtol: float) -> tuple[float, float, float]:
    q = _check_prob("q", q)
    budget = float(budget)
    rtol = float(rtol)
    if math.isnan(budget):
        raise ValueError("budget must be a number, got nan")
    if not 0.0 < rtol < 1.0:
        raise ValueError(f"rtol must be in (0, 1), got {rtol!r}")
    return q, budget, rtol


def calibrate_biawgn_sigma(q: float, budget: float, rtol: float = 1e-9) -> float:
    """Smallest-enough sigma with budget*(1-rtol) <= biawgn_mi(q, sigma) <= budget.

    Conservative by construction (pitfall 16.1): the returned sigma has been evaluated at
    MI <= budget. Starts from the Gaussian bound sqrt(2q(1-q)/budget), which already satisfies
    MI <= budget and is within 1% of the answer at PACZero's per-step budgets.
    """
    q, budget, rtol = _check_budget_args(q, budget, rtol)
    if q == 0.0 or q == 1.0:
        return 0.0
    if budget <= 0.0:
        return math.inf
    h = binary_entropy(q)
    if budget >= h:
        return 0.0
    p = 1.0 - q

    def mi_at(x: float) -> tuple[float, float]:
        sigma = math.exp(-x)  # x = -ln(sigma) so that MI increases with x
        return sigma, _biawgn(q, p, sigma)

    x_start = -0.5 * math.log(2.0 * q * p / budget)
    return _solve_budget(mi_at, x_start, math.log(2.0), budget, h, rtol)


# ---------------------------------------------------------------------------------------------
# Binary symmetric channel (randomized response) and general Bernoulli releases
# ---------------------------------------------------------------------------------------------


def _bsc(q: float, p: float, rho: float) -> float:
    """q*KL(P(Y|+1) || P_Y) + (1-q)*KL(P(Y|-1) || P_Y), with every difference formed exactly.

    lam = 1 - 2rho is exact for rho in [1/4, 1/2] and P_Y = rho + q*lam, 1 - P_Y = rho + p*lam
    are sums of non-negative terms, so the MI keeps its relative accuracy as rho -> 1/2 where
    H_b(P_Y) - H_b(rho) would cancel.
    """
    lam = 1.0 - 2.0 * rho
    if lam <= 0.0:
        return 0.0
    rho_c = 1.0 - rho
    y1 = rho + q * lam
    y0 = rho + p * lam
    plus = _kl_split(rho_c, rho, y1, y0, p * lam)
    minus = _kl_split(rho, rho_c, y1, y0, -q * lam)
    return max(q * plus + p * minus, 0.0)


def bsc_mi(q: float, rho: float) -> float:
    """I for a secret bit sent through a binary symmetric channel (randomized response)."""
    q = _check_prob("q", q)
    rho = float(rho)
    if not 0.0 <= rho <= 0.5:
        raise ValueError(f"rho must be a flip probability in [0, 1/2], got {rho!r}")
    if q == 0.0 or q == 1.0:
        return 0.0
    return _bsc(q, 1.0 - q, rho)


def calibrate_bsc_flip(q: float, budget: float, rtol: float = 1e-9) -> float:
    """Flip probability rho with budget*(1-rtol) <= bsc_mi(q, rho) <= budget (larger rho if not).

    Searches lam = 1 - 2rho on a log scale from the small-budget solution
    lam ~ sqrt(budget / (2q(1-q))), which overspends slightly (MI >= 2q(1-q) lam^2).
    """
    q, budget, rtol = _check_budget_args(q, budget, rtol)
    if q == 0.0 or q == 1.0:
        return 0.0
    if budget <= 0.0:
        return 0.5
    h = binary_entropy(q)
    if budget >= h:
        return 0.0
    p = 1.0 - q

    half_log = math.log(0.5)

    def mi_at(x: float) -> tuple[float, float]:
        # x = ln(1 - 2rho) while rho >= 1/4, then ln(rho) continues on a log scale towards 0,
        # so both tiny budgets (rho near 1/2) and budgets near H_b(q) (rho near 0) resolve.
        rho = 0.5 * (1.0 - math.exp(x)) if x <= half_log else 0.25 * math.exp(half_log - x)
        return rho, _bsc(q, p, rho)

    x_start = min(0.5 * math.log(budget / (2.0 * q * p)), half_log)
    return _solve_budget(mi_at, x_start, math.log(2.0), budget, h, rtol)


def _phi_vec(u: np.ndarray, t: np.ndarray) -> np.ndarray:
    small = np.abs(u) < _SERIES_CUT
    us = np.where(small, u, 0.0)
    return np.where(small, us * us * _horner(_PHI_COEF, us), xlogy(t, t) - t + 1.0)


def binary_release_mi(prior: np.ndarray, p_one: np.ndarray) -> float:
    """I(S; Y) for a Bernoulli release with P(Y=1 | S=j) = p_one[j] and S ~ prior.

    Computed as sum_j prior_j * KL(Bern(p_j) || Bern(mean)), the cancellation-free form of
    H_b(mean) - sum_j prior_j H_b(p_j) (docs/algorithms.md 5.4).
    """
    pi = np.asarray(prior, dtype=float).ravel()
    p1 = np.asarray(p_one, dtype=float).ravel()
    if pi.shape != p1.shape:
        raise ValueError(f"prior and p_one differ in length: {pi.size} vs {p1.size}")
    if pi.size == 0:
        raise ValueError("prior is empty")
    if not (np.all(pi >= 0.0) and abs(float(pi.sum()) - 1.0) <= 1e-6):
        raise ValueError("prior must be non-negative and sum to 1")
    if not np.all((p1 >= 0.0) & (p1 <= 1.0)):
        raise ValueError("p_one must hold probabilities in [0, 1]")
    pi = pi / pi.sum()
    keep = pi > 0.0
    pi, p1 = pi[keep], p1[keep]
    p0 = 1.0 - p1
    mean1 = float(np.dot(pi, p1))
    mean0 = float(np.dot(pi, p0))
    if mean1 == 0.0 or mean0 == 0.0:
        return 0.0
    d = p1 - mean1
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = mean1 * _phi_vec(d / mean1, p1 / mean1) + mean0 * _phi_vec(-d / mean0, p0 / mean0)
    return max(float(np.dot(pi, terms)), 0.0)
