"""The audit's statistics: the one-run epsilon bound, the rank bound, identification."""

import math

import numpy as np
import pytest
from scipy.stats import binom

from paczero.auditing.stats import (
    clopper_pearson,
    fano_bound,
    identification_bound,
    kl_upper_inverse,
    rank_epsilon_lower_bound,
    rank_mi_lower_bound,
    snj_epsilon_lower_bound,
    snj_p_value,
)
from paczero.privacy.bounds import mi_to_epsilon
from paczero.privacy.channels import kl_bernoulli


def test_snj_p_value_is_the_binomial_tail_without_delta_and_grows_with_it():
    q = 1 / (1 + math.exp(-1.0))
    assert snj_p_value(100, 50, 40, 1.0) == pytest.approx(binom.sf(39, 50, q), rel=1e-12)
    assert snj_p_value(100, 50, 40, 1.0, delta=1e-5) > snj_p_value(100, 50, 40, 1.0)
    assert snj_p_value(100, 50, 0, 3.0) == 1.0


def test_snj_bound_is_zero_at_chance_positive_for_many_right_and_rejected_at_its_value():
    assert snj_epsilon_lower_bound(64, 64, 32) == 0.0
    eps = snj_epsilon_lower_bound(64, 64, 64)
    assert 2.5 < eps < 4.0
    assert snj_p_value(64, 64, 64, eps) < 0.05 <= snj_p_value(64, 64, 64, eps + 1e-3)


def test_snj_bound_is_valid_and_has_power_on_randomized_response():
    """epsilon0-randomized response on independent bits: the lower bound exceeds epsilon0
    in at most ~5% of repetitions, and is clearly positive on average."""
    rng = np.random.default_rng(7)
    eps0, m, reps = 2.0, 200, 200
    keep = 1 / (1 + math.exp(-eps0))
    bounds = []
    for _ in range(reps):
        correct = int(rng.binomial(m, keep))
        bounds.append(snj_epsilon_lower_bound(m, m, correct))
    bounds = np.array(bounds)
    assert np.mean(bounds > eps0) <= 0.09  # 5% plus Monte-Carlo slack
    assert np.mean(bounds) > 1.0


def test_rank_bound_is_zero_above_alpha_and_kl_below():
    assert rank_mi_lower_bound(1 / 16) == 0.0  # 16 candidates: naming S* is 6% by chance
    assert rank_mi_lower_bound(1 / 128) == pytest.approx(kl_bernoulli(0.05, 1 / 128))
    assert rank_epsilon_lower_bound(1 / 128) == pytest.approx(mi_to_epsilon(0.0515373), rel=1e-4)


def test_rank_bound_is_valid_for_a_mechanism_at_its_budget():
    """A mechanism that reveals S* with probability p (else nothing) has I = p ln M; the
    rank bound exceeds I in at most alpha of its runs."""
    rng = np.random.default_rng(3)
    m, p, alpha = 256, 0.3, 0.05
    mi = p * math.log(m)
    over = 0
    for _ in range(2000):
        revealed = rng.random() < p
        rank = 1 if revealed else int(rng.integers(1, m + 1))  # uninformative: S* uniform
        over += rank_mi_lower_bound(rank / m, alpha) > mi
    assert over / 2000 <= alpha


def test_identification_bounds():
    assert identification_bound(0.0, 16) == pytest.approx(1 / 16)
    assert identification_bound(0.33, 16) <= fano_bound(0.33, 16)
    p = kl_upper_inverse(0.1, 0.2)
    assert kl_bernoulli(p, 0.1) >= 0.2 - 1e-12 and kl_bernoulli(p - 1e-6, 0.1) < 0.2
    lo, hi = clopper_pearson(5, 10)
    assert lo < 0.5 < hi
