"""The SPSA engine: seeded z, exact restore, fused update, derivatives."""

import numpy as np
import pytest
import torch

from paczero.engine.zo import ZOEstimator, add_direction, direction_block
from paczero.privacy.randomness import tensor_seed


def make_params(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(64, 48, generator=gen) * 0.02,
        torch.randn(48, generator=gen),
        torch.randn(3, 5, 7, generator=gen),
    ]


def test_same_seed_gives_same_z_on_every_call():
    params = make_params()
    first = [direction_block(p, 1234, i) for i, p in enumerate(params)]
    second = [direction_block(p, 1234, i) for i, p in enumerate(params)]
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    other = direction_block(params[0], 1235, 0)
    assert not torch.equal(first[0], other)
    # blocks of different tensors are different streams
    assert not torch.equal(first[0].flatten()[:48], first[1])


def test_z_is_standard_normal():
    z = direction_block(torch.empty(200_000), 7, 0)
    assert abs(z.mean().item()) < 0.01
    assert abs(z.std().item() - 1) < 0.01


def test_parallel_perturbation_is_bit_identical_to_one_thread(monkeypatch):
    """Large CPU models perturb tensors in threads; z must not depend on that."""
    import paczero.engine.zo as zo

    monkeypatch.setattr(zo, "PARALLEL_MIN_NUMEL", 0)
    monkeypatch.setattr(zo, "Z_BLOCK", 500)  # several blocks per tensor, in any order
    params = [p.requires_grad_() for p in make_params(3)]  # as a full-parameter model's
    serial = [p.detach().clone() for p in params]
    assert zo._perturbation_workers(serial) is None  # conftest: one torch thread
    add_direction(serial, 77, 1e-3)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert zo._perturbation_workers(params) is not None
        add_direction(params, 77, 1e-3)
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(params, serial, strict=True):
        assert torch.equal(a.detach(), b)


def test_large_tensors_are_perturbed_block_by_block(monkeypatch):
    """Blocks bound the z buffer; their union is the tensor's z, and blocks differ."""
    import paczero.engine.zo as zo

    monkeypatch.setattr(zo, "Z_BLOCK", 1000)
    big = torch.zeros(50, 47)  # 2350 values: blocks of 1000, 1000, 350
    strided = torch.zeros(47, 50).t()  # not contiguous: perturbed whole
    add_direction([big, strided], 5, 1.0)
    assert torch.equal(big, direction_block(big, 5, 0))
    assert torch.equal(strided, direction_block(strided, 5, 1))
    flat = big.flatten()
    assert not torch.equal(flat[:350], flat[1000:1350])
    assert not torch.equal(flat[:350], flat[2000:])
    small = torch.zeros(7)  # one block: the same z as before blocks existed
    add_direction([small], 5, 1.0)
    gen = torch.Generator().manual_seed(tensor_seed(5, 0))
    assert torch.equal(small, torch.randn(7, generator=gen))


def test_exact_restore_returns_the_exact_tensors_in_float32():
    params = make_params()
    original = [p.clone() for p in params]
    estimator = ZOEstimator(params, eps=1e-3, restore="exact")
    estimator.estimate(99, lambda: torch.stack([p.sum() for p in params]))
    for p, q in zip(params, original, strict=True):
        assert torch.equal(p, q)


def test_fused_restore_without_update_is_only_float_rounding_away():
    params = make_params()
    original = [p.clone() for p in params]
    estimator = ZOEstimator(params, eps=1e-3, restore="fused")
    estimator.estimate(5, lambda: torch.stack([p.sum() for p in params]), defer_restore=True)
    assert not torch.allclose(params[0], original[0], atol=1e-5)  # still at theta - eps z
    estimator.update([(5, 0.0)])
    for p, q in zip(params, original, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=4 * torch.finfo(torch.float32).eps * 4)


@pytest.mark.parametrize("restore", ["exact", "fused"])
def test_fused_restore_and_update_equals_restore_then_update(restore):
    params = make_params()
    reference = [p.clone() for p in params]
    lr, coeff, seed = 0.01, -0.7, 31

    estimator = ZOEstimator(params, eps=1e-3, restore=restore)
    estimator.estimate(seed, lambda: torch.zeros(3), defer_restore=True)
    estimator.update([(seed, lr * coeff)])

    add_direction(reference, seed, -lr * coeff)  # theta restored, then theta -= lr c z
    for p, q in zip(params, reference, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


def test_update_moves_along_minus_z():
    params = [torch.zeros(1000)]
    estimator = ZOEstimator(params, eps=1e-3, restore="exact")
    estimator.update([(3, 0.5)])
    z = direction_block(params[0], 3, 0)
    assert torch.equal(params[0], -0.5 * z)


def test_derivatives_of_a_quadratic_match_the_analytic_directional_derivative():
    gen = torch.Generator().manual_seed(1)
    targets = torch.randn(5, 30, generator=gen, dtype=torch.float64)
    theta = [torch.randn(30, generator=gen, dtype=torch.float64)]

    def losses():
        return ((theta[0] - targets) ** 2).sum(dim=1)

    estimator = ZOEstimator(theta, eps=1e-4, restore="exact")
    g = estimator.estimate(8, losses).derivatives
    z = direction_block(theta[0], 8, 0).double()
    expected = (2 * (theta[0] - targets) @ z).numpy()  # exact for a quadratic
    np.testing.assert_allclose(g, expected, rtol=1e-6)


@pytest.mark.parametrize("restore", ["exact", "fused"])
def test_replay_reproduces_a_step_bit_for_bit(restore):
    live, replayed = make_params(3), make_params(3)
    seeds, amounts = [11, 12], [0.01, -0.02]
    estimator = ZOEstimator(live, eps=1e-3, restore=restore)
    for k, seed in enumerate(seeds):
        estimator.estimate(seed, lambda: torch.zeros(2), defer_restore=k == len(seeds) - 1)
    estimator.update(list(zip(seeds, amounts, strict=True)))
    ZOEstimator(replayed, eps=1e-3, restore=restore).replay(seeds, amounts)
    for a, b in zip(live, replayed, strict=True):
        assert torch.equal(a, b)


def test_a_pending_restore_blocks_a_new_estimate():
    estimator = ZOEstimator(make_params(), eps=1e-3, restore="fused")
    estimator.estimate(1, lambda: torch.zeros(1), defer_restore=True)
    with pytest.raises(RuntimeError):
        estimator.estimate(2, lambda: torch.zeros(1))
