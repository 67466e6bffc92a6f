"""Exact-value tests for the binary channels' MI and their noise calibration."""

import math
import time

import numpy as np
import pytest
from scipy.special import ndtr

from paczero.privacy.channels import (
    biawgn_mi,
    binary_entropy,
    binary_release_mi,
    bsc_mi,
    calibrate_biawgn_sigma,
    calibrate_bsc_flip,
    kl_bernoulli,
)

LN2 = math.log(2.0)
QS = [1e-12, 1e-6, 0.01, 0.3, 0.5, 0.9, 1 - 1e-12]
SIGMAS = [1e-3, 0.05, 0.3, 1.0, 3.0, 30.0, 1e3, 1e5]


def mpmath_biawgn_mi(q, sigma, dps=30):
    """Independent reference: the closed form of docs/algorithms.md 5.4, by mpmath tanh-sinh.

    -E_x[q ln(q + (1-q) e^{-L}) + (1-q) ln((1-q) + q e^{-L})], L = 2/sigma^2 + 2x/sigma, split
    at the kinks of both logarithms (where the integrand changes slope) and at 0.
    """
    mp = pytest.importorskip("mpmath")
    with mp.workdps(dps):
        q = mp.mpf(q)
        p = 1 - q
        m = 2 / mp.mpf(sigma) ** 2
        a = mp.sqrt(2 * m)
        ell = mp.log(p / q)

        def f(z):
            e = mp.expm1(-(m + a * z))
            return -(q * mp.log1p(p * e) + p * mp.log1p(q * e)) * mp.exp(-z * z / 2)

        lo, hi = mp.mpf(-40), mp.mpf(40)
        pts = {mp.mpf(0)}
        for c in ((ell - m) / a, (-ell - m) / a):
            pts.update((c - 20 / a, c, c + 20 / a))
        pts = sorted(x for x in pts if lo < x < hi)
        return float(mp.quad(f, [lo, *pts, hi]) / mp.sqrt(2 * mp.pi))


# mpmath_biawgn_mi(q, sigma, dps=50) on the grid QS x SIGMAS (agrees with dps=60 to 1e-25);
# test_reference_table_matches_mpmath recomputes it (slow tier).
REFERENCE = {
    1e-12: (
        2.8631021115928048e-11,
        2.8631021115928048e-11,
        2.1545696478350713e-11,
        1.9999999999732009e-12,
        2.2222222222194241e-13,
        2.222222222219995e-15,
        1.999999999998e-18,
        1.999999999998e-22,
    ),  # noqa: E501
    1e-06: (
        1.4815510057964107e-5,
        1.4815510057964107e-5,
        1.4296684522104455e-5,
        1.9999732267898086e-6,
        2.2222194241065921e-7,
        2.2222199950544141e-9,
        1.9999979999959999e-12,
        1.9999979999999995e-16,
    ),  # noqa: E501
    0.01: (
        5.6001534354847341e-2,
        5.6001534354847341e-2,
        5.5794464486272309e-2,
        1.8650631216293809e-2,
        2.1944223857714572e-3,
        2.1999515324940304e-5,
        1.9799999607959509e-8,
        1.9799999999960796e-12,
    ),  # noqa: E501
    0.3: (
        6.1086430205489345e-1,
        6.1086430205489345e-1,
        6.0973366213907913e-1,
        2.9185751791279813e-1,
        4.4573206379071522e-2,
        4.6644897279880632e-4,
        4.1999982360006114e-7,
        4.1999999998235999e-11,
    ),  # noqa: E501
    0.5: (
        6.9314718055994531e-1,
        6.9314718055994531e-1,
        6.9190612381434952e-1,
        3.3683082034683161e-1,
        5.267163686266074e-2,
        5.5524714188713092e-4,
        4.9999975000016667e-7,
        4.99999999975e-11,
    ),  # noqa: E501
    0.9: (
        3.2508297339144819e-1,
        3.2508297339144819e-1,
        3.2436778790007892e-1,
        1.4202040636656034e-1,
        1.9575779044885874e-2,
        1.9995997276915235e-4,
        1.7999996759998009e-7,
        1.7999999999675996e-11,
    ),  # noqa: E501
    1 - 1e-12: (
        2.8630409869967563e-11,
        2.8630409869967563e-11,
        2.1545223814163249e-11,
        1.9999557565329591e-12,
        2.2221730628413764e-13,
        2.2221730628419474e-15,
        1.9999557565577571e-18,
        1.9999557565577571e-22,
    ),  # noqa: E501
}
GRID = [(q, s, REFERENCE[q][i]) for q in QS for i, s in enumerate(SIGMAS)]


# --- entropy and KL -----------------------------------------------------------------------


def test_binary_entropy_values():
    assert binary_entropy(0.5) == pytest.approx(LN2, rel=1e-15)
    assert binary_entropy(0.0) == 0.0
    assert binary_entropy(1.0) == 0.0
    for p in [1e-9, 0.1, 0.3, 0.45]:
        assert binary_entropy(p) == pytest.approx(binary_entropy(1.0 - p), rel=1e-12)
    assert binary_entropy(0.25) == pytest.approx(0.5623351446188083, rel=1e-15)


def test_binary_entropy_tiny_p():
    # H_b(p) = p(ln(1/p) + 1) - p^2/2 + ... ; the naive -(1-p)ln(1-p) rounds this away.
    for p in [1e-300, 1e-30, 1e-12]:
        expected = p * (math.log(1.0 / p) + 1.0) - p * p / 2.0
        assert binary_entropy(p) == pytest.approx(expected, rel=1e-14)


def test_kl_identities():
    for x in [0.0, 1e-8, 0.2, 0.5, 0.77, 1.0]:
        assert kl_bernoulli(x, 0.5) == pytest.approx(LN2 - binary_entropy(x), rel=1e-13, abs=0)
    for p in [1e-12, 0.3, 0.5, 1 - 1e-9]:
        assert kl_bernoulli(p, p) == 0.0
    assert kl_bernoulli(1.0, 0.25) == pytest.approx(math.log(4.0), rel=1e-15)
    assert kl_bernoulli(0.0, 0.0) == 0.0
    assert kl_bernoulli(0.5, 0.0) == math.inf
    assert kl_bernoulli(0.5, 1.0) == math.inf


def test_kl_close_arguments_keep_relative_accuracy():
    # KL(Bern(1/2 + d) || Bern(1/2)) = 2d^2 + 4d^4/3 + ... ; ln 2 - H_b(x) would return 0 here.
    d = 1e-10
    assert kl_bernoulli(0.5 + d, 0.5) == pytest.approx(2 * d * d, rel=1e-5)
    # KL(Bern(p(1+u)) || Bern(p)) ~ p u^2 / (2(1-p)) for small p and u.
    p, u = 1e-9, 1e-4
    assert kl_bernoulli(p * (1 + u), p) == pytest.approx(p * u * u / 2 / (1 - p), rel=1e-4)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan])
def test_probability_validation(bad):
    with pytest.raises(ValueError, match="probability"):
        binary_entropy(bad)
    with pytest.raises(ValueError, match="probability"):
        biawgn_mi(bad, 1.0)


# --- binary-input Gaussian channel ----------------------------------------------------------


@pytest.mark.parametrize(("q", "sigma", "expected"), GRID)
def test_biawgn_mi_matches_reference(q, sigma, expected):
    value = biawgn_mi(q, sigma)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-10, abs=1e-300)


@pytest.mark.parametrize(
    ("q", "sigma"),
    [(1e-12, 1.0), (0.5, 1.49), (0.9, 1.51), (1e-6, 1e4)],
)
def test_biawgn_mi_matches_live_mpmath(q, sigma):
    # Both sides of the method switch at sigma = 1.5, and points off the table's grid.
    assert biawgn_mi(q, sigma) == pytest.approx(mpmath_biawgn_mi(q, sigma), rel=1e-10)


@pytest.mark.slow
def test_reference_table_matches_mpmath():
    for q, sigma, expected in GRID:
        assert mpmath_biawgn_mi(q, sigma, dps=50) == pytest.approx(expected, rel=1e-15)


def test_biawgn_special_cases():
    assert biawgn_mi(0.0, 1.0) == 0.0
    assert biawgn_mi(1.0, 1.0) == 0.0
    assert biawgn_mi(0.3, math.inf) == 0.0
    assert biawgn_mi(0.3, 0.0) == binary_entropy(0.3)
    assert biawgn_mi(0.3, 1e-3) == pytest.approx(binary_entropy(0.3), rel=1e-15)
    assert biawgn_mi(0.3, 1e-200) == binary_entropy(0.3)
    with pytest.raises(ValueError, match="sigma"):
        biawgn_mi(0.3, -1.0)
    with pytest.raises(ValueError, match="sigma"):
        biawgn_mi(0.3, math.nan)


@pytest.mark.parametrize("q", [1e-12, 0.01, 0.3, 0.5])
def test_biawgn_small_snr_expansion(q):
    # I = v m - v^2 m^2 + O(m^3), v = q(1-q), m = 2/sigma^2: pins the value and the first
    # correction, which a formula that cancels at large sigma cannot resolve.
    v = q * (1 - q)
    for sigma in [1e3, 1e4]:
        m = 2.0 / sigma**2
        mi = biawgn_mi(q, sigma)
        assert mi == pytest.approx(v * m, rel=2 * v * m)
        if v > 1e-6:
            assert (v * m - mi) / (v * m) ** 2 == pytest.approx(1.0, rel=1e-4)
    assert biawgn_mi(q, 1e5) == pytest.approx(2 * v / 1e10, rel=1e-9)


@pytest.mark.parametrize("q", [1e-12, 0.01, 0.5, 0.9])
def test_biawgn_monotone_in_sigma(q):
    sigmas = np.geomspace(1e-3, 1e5, 300)
    mi = np.array([biawgn_mi(q, s) for s in sigmas])
    assert np.all(mi >= 0.0)
    assert np.all(mi <= binary_entropy(q))
    assert np.all(np.diff(mi) <= 0.0)
    assert np.all(np.diff(mi[sigmas > 0.5]) < 0.0)


# docs/algorithms.md 5.4: beta -> exact sigma, Gaussian-bound sigma, P(sign(R) != s), at q = 1/2.
@pytest.mark.parametrize(
    ("beta", "sigma", "bound", "flip"),
    [(1e-4, 70.71, 70.71, 0.4944), (1e-3, 22.35, 22.36, 0.4822), (1e-2, 7.04, 7.07, 0.4435)],
)
def test_reference_table_q_half(beta, sigma, bound, flip):
    s = calibrate_biawgn_sigma(0.5, beta)
    assert round(s, 2) == sigma
    assert round(math.sqrt(0.5 / beta), 2) == bound
    assert round(float(ndtr(-1.0 / s)), 4) == flip


def test_pitfall_absolute_tolerance_is_fixed():
    # docs/algorithms.md 9.1: the official absolute tolerance returns sigma = 1000 at beta = 5e-8,
    # whose MI is 10x the charge. Ours stays under the charge and within rtol of it.
    assert biawgn_mi(0.5, 1000.0) == pytest.approx(5e-7, rel=1e-6)
    sigma = calibrate_biawgn_sigma(0.5, 5e-8)
    assert sigma == pytest.approx(3162.2776, rel=1e-7)
    assert 5e-8 * (1 - 1e-9) <= biawgn_mi(0.5, sigma) <= 5e-8


def _budgets(q):
    h = binary_entropy(q)
    out = [1e-12, 5e-8, 1.65e-4, 1e-2, 0.5 * h, h * (1 - 1e-6), h * (1 - 1e-12)]
    return [b for b in out if b < h]


CAL_CASES = [(q, b) for q in QS for b in _budgets(q)]


@pytest.mark.parametrize(("q", "budget"), CAL_CASES)
def test_calibrate_biawgn_window(q, budget):
    sigma = calibrate_biawgn_sigma(q, budget)
    assert 0.0 < sigma < math.inf
    mi = biawgn_mi(q, sigma)
    assert budget * (1 - 1e-9) <= mi <= budget


def test_calibrate_biawgn_rtol_and_conservative_end():
    sigma = calibrate_biawgn_sigma(0.3, 1e-3, rtol=1e-3)
    assert 1e-3 * (1 - 1e-3) <= biawgn_mi(0.3, sigma) <= 1e-3
    # A window narrower than the evaluation's resolution still never overspends.
    for budget in [1e-9, 1e-3, 0.3]:
        sigma = calibrate_biawgn_sigma(0.5, budget, rtol=1e-15)
        assert biawgn_mi(0.5, sigma) <= budget


def test_calibrate_biawgn_special_cases():
    assert calibrate_biawgn_sigma(0.0, 1e-3) == 0.0
    assert calibrate_biawgn_sigma(1.0, 1e-3) == 0.0
    assert calibrate_biawgn_sigma(0.5, LN2) == 0.0
    assert calibrate_biawgn_sigma(1e-12, 1e-9) == 0.0  # budget > H_b(1e-12) ~ 2.9e-11
    assert calibrate_biawgn_sigma(0.5, 0.0) == math.inf
    assert calibrate_biawgn_sigma(0.5, -1.0) == math.inf
    with pytest.raises(ValueError):
        calibrate_biawgn_sigma(0.5, math.nan)


def test_calibration_is_fast():
    q_values = [0.5, 0.3, 0.01, 0.999]
    start = time.perf_counter()
    for q in q_values:
        for budget in [5e-8, 1.65e-4, 1e-3]:
            calibrate_biawgn_sigma(q, budget)
    per_call = (time.perf_counter() - start) / (3 * len(q_values))
    assert per_call < 0.02


# --- binary symmetric channel and general Bernoulli releases --------------------------------


def mpmath_bsc_mi(q, rho):
    mp = pytest.importorskip("mpmath")
    with mp.workdps(60):
        q, rho = mp.mpf(q), mp.mpf(rho)

        def h(x):
            return -x * mp.log(x) - (1 - x) * mp.log(1 - x) if 0 < x < 1 else mp.mpf(0)

        return float(h(q * (1 - rho) + (1 - q) * rho) - h(rho))


@pytest.mark.parametrize("q", QS)
@pytest.mark.parametrize("rho", [0.0, 1e-12, 0.1, 0.3, 0.49, 0.5 - 1e-6, 0.5 - 2**-40, 0.5])
def test_bsc_mi_matches_mpmath(q, rho):
    # Near rho = 1/2 the MI is ~1e-24 while H_b(.) - H_b(rho) is a difference of two numbers
    # near ln 2.
    assert bsc_mi(q, rho) == pytest.approx(mpmath_bsc_mi(q, rho), rel=1e-12, abs=1e-300)


def test_bsc_limits_and_release_identity():
    assert bsc_mi(0.3, 0.0) == pytest.approx(binary_entropy(0.3), rel=1e-15)
    assert bsc_mi(0.3, 0.5) == 0.0
    assert bsc_mi(0.0, 0.1) == 0.0
    for q, rho in [(0.5, 0.2), (0.3, 0.45), (1e-6, 0.01)]:
        generic = binary_release_mi(np.array([q, 1 - q]), np.array([1 - rho, rho]))
        assert bsc_mi(q, rho) == pytest.approx(generic, rel=1e-13)
    with pytest.raises(ValueError, match="rho"):
        bsc_mi(0.3, 0.6)


@pytest.mark.parametrize(("q", "budget"), CAL_CASES)
def test_calibrate_bsc_window(q, budget):
    rho = calibrate_bsc_flip(q, budget)
    assert 0.0 <= rho <= 0.5
    assert budget * (1 - 1e-9) <= bsc_mi(q, rho) <= budget


def test_calibrate_bsc_small_budget_matches_rr_approximation():
    # docs/algorithms.md 5.4: 1 - 2 rho = lambda ~ sqrt(beta / (2 q (1-q))).
    for q in [0.5, 0.3, 0.01]:
        beta = 1e-8
        lam = 1 - 2 * calibrate_bsc_flip(q, beta)
        assert lam == pytest.approx(math.sqrt(beta / (2 * q * (1 - q))), rel=1e-4)


def test_calibrate_bsc_special_cases():
    assert calibrate_bsc_flip(0.0, 1e-3) == 0.0
    assert calibrate_bsc_flip(1.0, 1e-3) == 0.0
    assert calibrate_bsc_flip(0.5, 1.0) == 0.0
    assert calibrate_bsc_flip(0.5, 0.0) == 0.5
    assert calibrate_bsc_flip(0.5, -1e-3) == 0.5


# docs/algorithms.md 5.4, q = 1/2: beta -> flip probability of Gaussian-then-sign, and of RR.
@pytest.mark.parametrize(
    ("beta", "gauss_flip", "rr_rho"), [(1e-3, 0.4822, 0.4776), (1e-2, 0.4435, 0.4294)]
)
def test_gaussian_sign_versus_rr_table(beta, gauss_flip, rr_rho):
    assert round(float(ndtr(-1.0 / calibrate_biawgn_sigma(0.5, beta))), 4) == gauss_flip
    assert round(calibrate_bsc_flip(0.5, beta), 4) == rr_rho


def test_sign_alone_carries_about_two_thirds():
    # docs/algorithms.md 5.4: I(S; sign R) = 6.37e-5 when 1e-4 is charged for R.
    flip = float(ndtr(-1.0 / calibrate_biawgn_sigma(0.5, 1e-4)))
    assert bsc_mi(0.5, flip) == pytest.approx(6.37e-5, abs=5e-8)


def test_binary_release_mi():
    rng = np.random.default_rng(0)
    prior = rng.dirichlet(np.ones(7))
    p_one = rng.uniform(0.05, 0.95, size=7)
    naive = binary_entropy(float(prior @ p_one)) - sum(
        w * binary_entropy(p) for w, p in zip(prior, p_one, strict=True)
    )
    assert binary_release_mi(prior, p_one) == pytest.approx(naive, rel=1e-12)
    # A release that does not depend on S is free; a deterministic one costs H_b(mass on 1).
    assert binary_release_mi(np.full(4, 0.25), np.full(4, 0.3)) == 0.0
    det = binary_release_mi(np.array([0.2, 0.3, 0.5]), np.array([1.0, 0.0, 1.0]))
    assert det == pytest.approx(binary_entropy(0.7), rel=1e-14)
    # ZPL's unanimity: all candidates agree, so the noise-free release is free.
    assert binary_release_mi(np.full(3, 1 / 3), np.ones(3)) == 0.0
    with pytest.raises(ValueError, match="sum to 1"):
        binary_release_mi(np.array([0.5, 0.6]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="differ in length"):
        binary_release_mi(np.array([0.5, 0.5]), np.array([0.1]))
    with pytest.raises(ValueError, match="p_one"):
        binary_release_mi(np.array([0.5, 0.5]), np.array([0.1, 1.2]))
