"""Exact-value tests for the MI / DP -> membership-inference bounds and their matching."""

import math

import pytest

from paczero.privacy.bounds import (
    describe_summary,
    epsilon_to_mi,
    epsilon_to_posterior_bound,
    mi_to_epsilon,
    mi_to_posterior_bound,
    pinsker_bound,
    posterior_bound_to_epsilon,
    posterior_bound_to_mi,
    privacy_summary,
)

LN2 = math.log(2.0)


def _shown(value: float, text: str) -> bool:
    """value rounds to the table entry text (half a unit in its last shown digit)."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(value - float(text)) <= 0.5 * 10.0**-decimals + 1e-12


def test_headline_values():
    assert round(mi_to_posterior_bound(0.33), 4) == 0.8819
    assert round(mi_to_epsilon(0.33), 2) == 2.01
    assert round(epsilon_to_posterior_bound(2.0), 4) == 0.8808
    assert round(epsilon_to_mi(2.0), 4) == 0.3278
    assert round(mi_to_epsilon(0.68), 2) == 6.32


# docs/algorithms.md 6.3, left half: epsilon (delta ~ 0) -> MIA bound, matched I.
@pytest.mark.parametrize(
    ("eps", "bound", "mi"),
    [
        (0.1, "0.5250", "0.00125"),
        (0.2, "0.5498", "0.00498"),
        (0.3, "0.5744", "0.0111"),
        (0.5, "0.6225", "0.0303"),
        (0.8, "0.6900", "0.0740"),
        (1, "0.7311", "0.1109"),
        (1.5, "0.8176", "0.2181"),
        (2, "0.8808", "0.3278"),
        (3, "0.9526", "0.5023"),
        (4, "0.9820", "0.6031"),
        (6, "0.9975", "0.6758"),
        (8, "0.9997", "0.6901"),
    ],
)
def test_table_epsilon_rows(eps, bound, mi):
    assert _shown(epsilon_to_posterior_bound(eps), bound)
    assert _shown(epsilon_to_mi(eps), mi)
    # "With delta = 1e-5 the values change only in the 5th decimal."
    assert abs(epsilon_to_posterior_bound(eps, 1e-5) - epsilon_to_posterior_bound(eps)) < 1e-5
    assert abs(epsilon_to_mi(eps, 1e-5) - epsilon_to_mi(eps)) < 1e-4


# docs/algorithms.md 6.3, right half: I in PACZero's scripts -> MIA bound x*, matched epsilon.
@pytest.mark.parametrize(
    ("mi", "bound", "eps"),
    [
        (1e-4, "0.5071", "0.028"),
        (1e-3, "0.5224", "0.089"),
        (3e-3, "0.5387", "0.155"),
        (1e-2, "0.5706", "0.284"),
        (3e-2, "0.6219", "0.497"),
        (5e-2, "0.6568", "0.649"),
        (0.07, "0.6849", "0.776"),
        (0.11, "0.7301", "0.995"),
        (0.20, "0.8052", "1.419"),
        (0.33, "0.8819", "2.01"),
        (0.50, "0.9518", "2.98"),
        (0.68, "0.9982", "6.32"),
    ],
)
def test_table_mi_rows(mi, bound, eps):
    assert _shown(mi_to_posterior_bound(mi), bound)
    assert _shown(mi_to_epsilon(mi), eps)


@pytest.mark.parametrize("mi", [1e-14, 1e-8, 1e-4, 0.01, 0.33, 0.68, 0.69])
def test_bound_is_tight_and_conservative(mi):
    x = mi_to_posterior_bound(mi)
    assert x > 0.5
    kl = posterior_bound_to_mi(x)
    assert kl >= mi  # rounded up: never below the exact bound
    # x is a float near 1/2, so KL(x) can only resolve mi to ~ 2 ulp(x) / (x - 1/2).
    assert kl == pytest.approx(mi, rel=max(1e-12, 4 * math.ulp(x) / (x - 0.5)))
    assert posterior_bound_to_mi(math.nextafter(x, 0.0)) < mi * (1 + 1e-15)


@pytest.mark.parametrize("mi", [1e-14, 1e-8, 1e-4, 0.01, 0.33, 0.68])
@pytest.mark.parametrize("delta", [0.0, 1e-5])
def test_round_trips(mi, delta):
    eps = mi_to_epsilon(mi, delta)
    if 2 * (mi_to_posterior_bound(mi) - 0.5) > delta:
        assert epsilon_to_mi(eps, delta) == pytest.approx(mi, rel=1e-9)
    x = epsilon_to_posterior_bound(eps, delta)
    # Through the float x the round trip resolves eps to ~ ulp(x) / (x - 1/2) relative.
    tol = max(1e-12, 4 * math.ulp(x) / max(x - 0.5, 1e-300))
    assert posterior_bound_to_epsilon(x, delta) == pytest.approx(eps, rel=tol, abs=1e-12)
    e2 = epsilon_to_mi(3.0, delta)
    assert mi_to_epsilon(e2, delta) == pytest.approx(3.0, rel=1e-9)


def test_small_budget_asymptotics():
    # KL(1/2 + d || 1/2) = 2 d^2 + ... so x* - 1/2 ~ sqrt(mi / 2) (Pinsker is tight), and the
    # matched epsilon is ln(x/(1-x)) ~ 4 d; neither may be lost to rounding near x = 1/2.
    mi = 1e-14
    d = math.sqrt(mi / 2)
    assert mi_to_posterior_bound(mi) - 0.5 == pytest.approx(d, rel=1e-6)
    assert mi_to_epsilon(mi) == pytest.approx(4 * d, rel=1e-6)
    assert epsilon_to_mi(4 * d) == pytest.approx(mi, rel=1e-6)


def test_edges():
    assert mi_to_posterior_bound(0.0) == 0.5
    assert mi_to_epsilon(0.0) == 0.0
    assert epsilon_to_mi(0.0) == 0.0
    assert epsilon_to_posterior_bound(0.0) == 0.5
    assert epsilon_to_posterior_bound(0.0, 0.2) == pytest.approx(0.6, rel=1e-15)
    assert mi_to_posterior_bound(LN2) == 1.0
    assert mi_to_posterior_bound(5.0) == 1.0
    assert mi_to_epsilon(LN2) == math.inf
    assert epsilon_to_mi(math.inf) == pytest.approx(LN2, rel=1e-15)
    assert epsilon_to_posterior_bound(math.inf) == 1.0
    assert epsilon_to_posterior_bound(1000.0) == 1.0  # no overflow
    assert posterior_bound_to_epsilon(1.0) == math.inf
    # With delta, a bound weaker than (1 + delta)/2 matches epsilon 0.
    assert posterior_bound_to_epsilon(0.5, 0.1) == 0.0
    assert mi_to_epsilon(1e-12, 0.01) == 0.0


def test_general_prior():
    prior = 0.1
    assert mi_to_posterior_bound(0.0, prior) == prior
    assert mi_to_posterior_bound(-math.log(prior), prior) == 1.0
    x = mi_to_posterior_bound(0.05, prior)
    assert x > prior
    assert posterior_bound_to_mi(x, prior) == pytest.approx(0.05, rel=1e-12)
    # Pure epsilon-DP with prior pi: posterior <= e^eps pi / (e^eps pi + 1 - pi); at 1/2 the
    # MI and DP forms agree through the matching.
    assert mi_to_posterior_bound(0.2) == pytest.approx(
        epsilon_to_posterior_bound(mi_to_epsilon(0.2)), rel=1e-12
    )


def test_pinsker():
    # S7's headline: 10^6 queries at 2^-32 nats each give at most 51.08%.
    assert round(pinsker_bound(1e6 * 2.0**-32), 4) == 0.5108
    assert pinsker_bound(10.0) == 1.0
    for mi in [1e-6, 0.01, 0.2, 0.5]:
        assert pinsker_bound(mi) >= mi_to_posterior_bound(mi)


def test_summary_from_mi():
    s = privacy_summary(mi=0.33)
    assert set(s) == {"framework", "mi", "epsilon", "delta", "posterior_bound", "prior"}
    assert s["framework"] == "pac-mi"
    assert s["mi"] == 0.33
    assert s["delta"] == 0.0
    assert s["prior"] == 0.5
    assert round(s["posterior_bound"], 4) == 0.8819
    assert round(s["epsilon"], 2) == 2.01
    text = describe_summary(s)
    assert "MI budget 0.33 nats" in text
    assert "at most 0.8819 (prior 0.5)" in text
    assert "Matched DP epsilon: 2.01 (delta 0)" in text
    assert "S*" in text and "candidate subsets" in text and "outside world" in text


def test_summary_from_epsilon():
    s = privacy_summary(epsilon=2.0, delta=1e-5)
    assert s["framework"] == "dp"
    assert s["epsilon"] == 2.0
    assert s["delta"] == 1e-5
    assert round(s["posterior_bound"], 4) == 0.8808
    assert round(s["mi"], 4) == 0.3278
    text = describe_summary(s)
    assert "0.8808" in text and "0.3278 nats" in text and "delta 1e-05" in text


def test_summary_keeps_tiny_advantages_visible():
    text = describe_summary(privacy_summary(mi=1e-8))
    assert "0.50007071" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"mi": 0.1, "epsilon": 1.0}, "exactly one"),
        ({"mi": -0.1}, "mi must be >= 0"),
        ({"mi": math.nan}, "mi must be >= 0"),
        ({"epsilon": -1.0}, "epsilon must be >= 0"),
        ({"epsilon": 1.0, "delta": 1.0}, r"delta must be in \[0, 1\)"),
        ({"mi": 0.1, "delta": -1e-3}, r"delta must be in \[0, 1\)"),
    ],
)
def test_summary_validation(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        privacy_summary(**kwargs)
    assert "\n" not in str(info.value)


def test_function_validation():
    with pytest.raises(ValueError):
        mi_to_posterior_bound(-1e-3)
    with pytest.raises(ValueError):
        mi_to_posterior_bound(0.1, prior=1.0)
    with pytest.raises(ValueError):
        epsilon_to_posterior_bound(-1.0)
    with pytest.raises(ValueError):
        posterior_bound_to_epsilon(1.2)
    with pytest.raises(ValueError):
        epsilon_to_mi(1.0, delta=1.0)
