"""The public candidate subsets and their one-product statistics."""

import numpy as np
import pytest

from paczero.mechanisms.subsets import (
    membership_digest,
    membership_matrix,
    prepare_derivatives,
    subset_means,
    subset_signs,
)

CONSTRUCTIONS = ["random-halves", "disjoint-pairs"]


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
@pytest.mark.parametrize("n,m", [(1, 2), (7, 4), (100, 16), (1000, 128), (33, 126)])
def test_each_example_in_exactly_half_the_subsets(construction, n, m):
    a = membership_matrix(n, m, construction, np.random.default_rng(3))
    assert a.dtype == bool and a.shape == (n, m)
    assert np.all(a.sum(axis=1) == m // 2)


def test_random_halves_are_uniform_over_subsets():
    a = membership_matrix(20000, 8, "random-halves", np.random.default_rng(0))
    # Each column holds each example with probability 1/2: counts ~ Bin(20000, 1/2).
    frac = a.mean(axis=0)
    assert np.all(np.abs(frac - 0.5) < 0.02)
    # Rows are not a fixed pattern: many distinct 4-of-8 rows appear (70 possible).
    assert len({row.tobytes() for row in a}) == 70


@pytest.mark.parametrize("n", [10, 11])
def test_disjoint_pairs_partition_the_pool(n):
    a = membership_matrix(n, 12, "disjoint-pairs", np.random.default_rng(5))
    for k in range(6):
        assert np.array_equal(a[:, 2 * k], ~a[:, 2 * k + 1])
        assert a[:, 2 * k].sum() in (n // 2, (n + 1) // 2)
    # The halves are independent draws, not one half repeated.
    assert len({a[:, 2 * k].tobytes() for k in range(6)}) > 1


@pytest.mark.parametrize("m", [3, 127, 1, 0])
def test_odd_or_tiny_m_rejected(m):
    with pytest.raises(ValueError, match="even"):
        membership_matrix(10, m, "random-halves", np.random.default_rng(0))


def test_unknown_construction_rejected():
    with pytest.raises(ValueError, match="construction"):
        membership_matrix(10, 4, "thirds", np.random.default_rng(0))


@pytest.mark.parametrize("construction", CONSTRUCTIONS)
def test_deterministic_for_the_same_generator(construction):
    one = membership_matrix(50, 10, construction, np.random.default_rng(11))
    two = membership_matrix(50, 10, construction, np.random.default_rng(11))
    other = membership_matrix(50, 10, construction, np.random.default_rng(12))
    assert np.array_equal(one, two)
    assert membership_digest(one) == membership_digest(two)
    assert not np.array_equal(one, other)
    assert membership_digest(one) != membership_digest(other)


def test_subset_means_equal_a_naive_loop():
    rng = np.random.default_rng(1)
    a = membership_matrix(200, 16, "random-halves", rng)
    g = rng.normal(size=200)
    means = subset_means(a, g)
    naive = np.array([g[a[:, j]].mean() for j in range(16)])
    assert means.dtype == np.float64
    np.testing.assert_allclose(means, naive, rtol=1e-12, atol=1e-15)
    # Float 0/1 weights give the same answer as bool.
    np.testing.assert_allclose(subset_means(a.astype(float), g), naive, rtol=1e-12, atol=1e-15)


def test_minibatch_means_and_empty_subsets_reported():
    rng = np.random.default_rng(2)
    a = membership_matrix(50, 8, "random-halves", rng)
    g_pool = rng.normal(size=50)
    idx = np.array([3, 17, 29])
    means, counts = subset_means(a[idx], g_pool[idx], return_counts=True)
    for j in range(8):
        members = [i for i in idx if a[i, j]]
        assert counts[j] == len(members)
        expected = g_pool[members].mean() if members else 0.0
        assert means[j] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # With 3 rows in 4-of-8 membership at least one subset is empty here or not; force it:
    means, counts = subset_means(a[[0]], np.array([-2.0]), return_counts=True)
    assert np.all(counts[a[0]] == 1) and np.all(counts[~a[0]] == 0)
    assert np.all(means[~a[0]] == 0.0) and np.all(means[a[0]] == -2.0)


def test_subset_means_shape_checked():
    with pytest.raises(ValueError, match="shape"):
        subset_means(np.ones((3, 2), dtype=bool), np.ones(4))


def test_signs_ties_go_to_plus():
    signs = subset_signs(np.array([-1e-300, 0.0, -0.0, 2.5, -3.0]))
    assert signs.dtype == np.int8
    assert signs.tolist() == [-1, 1, 1, 1, -1]


def test_prepare_derivatives_clips_and_validates():
    g = np.array([-5.0, 0.5, 7.0])
    out = prepare_derivatives(g, np.arange(3), 3, clip=1.0)
    assert out.tolist() == [-1.0, 0.5, 1.0]
    assert prepare_derivatives(g, np.arange(3), 3, clip=None).tolist() == g.tolist()
    with pytest.raises(ValueError, match="non-finite"):
        prepare_derivatives(np.array([np.nan, 1.0, 1.0]), np.arange(3), 3, clip=1.0)
    with pytest.raises(ValueError, match="pool rows"):
        prepare_derivatives(g, np.array([0, 1, 3]), 3, clip=None)
    with pytest.raises(ValueError, match="one length"):
        prepare_derivatives(g, np.arange(2), 3, clip=None)
