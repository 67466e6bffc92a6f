"""The attacker's posterior over candidate subsets: exact values, precision, broadcasting."""

import math

import numpy as np
import pytest

from paczero.privacy.posterior import (
    bsc_update,
    exact_update,
    gaussian_update,
    log_normalize,
    logsumexp,
    sign_log_masses,
    uniform_log_posterior,
)


def test_logsumexp_matches_the_direct_sum_and_allows_minus_infinity():
    x = np.array([0.1, -3.0, 2.5])
    assert logsumexp(x) == pytest.approx(math.log(np.exp(x).sum()), rel=1e-15)
    assert logsumexp(np.array([-math.inf, 0.0])) == 0.0
    assert logsumexp(np.array([-math.inf, -math.inf])) == -math.inf
    big = np.array([1000.0, 1000.0])  # no overflow
    assert logsumexp(big) == pytest.approx(1000.0 + math.log(2), rel=1e-15)
    rows = np.array([[0.0, 0.0], [1.0, -math.inf]])
    np.testing.assert_allclose(logsumexp(rows, axis=1), [math.log(2), 1.0])


def test_uniform_prior_and_normalisation():
    prior = uniform_log_posterior(8)
    assert np.allclose(np.exp(prior), 1 / 8) and np.exp(prior).sum() == pytest.approx(1.0)
    post = log_normalize(np.array([math.log(2.0), 0.0, 0.0, -math.inf]))
    np.testing.assert_allclose(np.exp(post), [0.5, 0.25, 0.25, 0.0], rtol=1e-15)


def test_sign_log_masses_keep_a_tiny_side_exact():
    # q = 1e-300 would read 0 as 1 - (1 - q); summed on its own it keeps its digits.
    log_post = np.array([0.0, math.log(1e-300)])
    lp, lm = sign_log_masses(log_post, np.array([-1, 1]))
    assert lp == pytest.approx(math.log(1e-300), rel=1e-12)
    assert lm == pytest.approx(0.0, abs=1e-15)
    lp, lm = sign_log_masses(np.log([0.5, 0.3, 0.2]), np.array([1, -1, 1]))
    assert (math.exp(lp), math.exp(lm)) == pytest.approx((0.7, 0.3), rel=1e-14)
    lp, lm = sign_log_masses(np.array([0.0, -math.inf]), np.array([1, -1]))
    assert (lp, lm) == (0.0, -math.inf)


def test_gaussian_update_is_bayes_rule_by_hand_and_broadcasts():
    log_post = log_normalize(np.log([0.5, 0.25, 0.25]))
    signs = np.array([1, -1, 1], dtype=np.int8)
    r, sigma = 0.3, 1.5
    like = np.exp(-((r - signs) ** 2) / (2 * sigma**2)) * np.exp(log_post)
    np.testing.assert_allclose(
        np.exp(gaussian_update(log_post, signs, r, sigma)), like / like.sum()
    )
    batch = gaussian_update(log_post, signs, np.array([0.3, -2.0]), 1.5)
    assert batch.shape == (2, 3)
    np.testing.assert_allclose(np.exp(batch).sum(axis=1), 1.0)
    np.testing.assert_allclose(batch[1], gaussian_update(log_post, signs, -2.0, 1.5))
    # Huge sigma: (R - s)^2 would cancel; the s R / sigma^2 form keeps the tilt.
    tilt = gaussian_update(np.log([0.5, 0.5]), np.array([1, -1]), 1.0, 1e6)
    assert math.exp(tilt[0]) - 0.5 == pytest.approx(1e-12, rel=1e-6)


def test_bsc_and_exact_updates_by_hand():
    log_post = np.log([0.4, 0.4, 0.2])
    signs = np.array([1, -1, -1], dtype=np.int8)
    post = np.exp(bsc_update(log_post, signs, 1, 0.1))
    like = np.array([0.9, 0.1, 0.1]) * [0.4, 0.4, 0.2]
    np.testing.assert_allclose(post, like / like.sum(), rtol=1e-14)
    # rho = 0: the bit is the sign itself, like the exact update.
    np.testing.assert_allclose(
        np.exp(bsc_update(log_post, signs, -1, 0.0)), np.exp(exact_update(log_post, signs, -1))
    )
    np.testing.assert_allclose(np.exp(exact_update(log_post, signs, -1)), [0, 2 / 3, 1 / 3])
