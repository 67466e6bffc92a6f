"""ZOOptimizer (paczero.engine.optim) in a loop of one's own: public minibatches, rows decided
once per step, the update the mechanism's coefficient says."""

import numpy as np
import pytest
import torch

from paczero.engine.optim import ZOOptimizer, public_minibatch
from paczero.engine.zo import ZOEstimator
from paczero.mechanisms import MeZO
from paczero.privacy.randomness import public_stream


def test_public_minibatches_are_keyed_by_the_step():
    stream = public_stream(3)
    first = public_minibatch(stream, 0, 20, 5)
    assert len(first) == 5 and list(first) == sorted(set(first.tolist()))
    assert np.array_equal(first, public_minibatch(public_stream(3), 0, 20, 5))
    assert not np.array_equal(first, public_minibatch(stream, 1, 20, 5))
    assert public_minibatch(stream, 0, 20, None).tolist() == list(range(20))


def test_a_step_moves_theta_by_lr_times_the_coefficient_along_z():
    torch.manual_seed(0)
    theta = torch.zeros(3)  # forward passes only: no autograd
    target = torch.tensor([1.0, -2.0, 0.5])
    rows_seen = []

    def losses(rows):
        rows_seen.append(np.asarray(rows).tolist())
        return ((theta - target) ** 2).sum().expand(len(rows)).clone()

    opt = ZOOptimizer([theta], MeZO(pool_size=6, steps=5), lr=0.1, eps=1e-3, batch_size=2,
                      secret=1)  # fmt: skip
    before = theta.clone()
    result = opt.step(losses)
    assert not result.rows_secret and not opt.rows_secret and len(result.rows) == 2
    assert all(seen == result.rows.tolist() for seen in rows_seen)  # one draw of rows
    assert result.coeffs[0] != 0.0 and opt.step_index == 1
    # the step is theta -= lr * coeff * z(seed): replaying the logged values gives theta
    replayed = before.clone()
    ZOEstimator([replayed], 1e-3).replay(result.seeds, [0.1 * result.coeffs[0]])
    assert torch.allclose(replayed, theta, rtol=0, atol=1e-6)
    assert not torch.equal(before, theta)


def test_the_zeroth_order_optimizer_refuses_a_first_order_mechanism(make_mechanism):
    mech, _, _ = make_mechanism("backprop", pool=16)
    with pytest.raises(ValueError, match="FirstOrderOptimizer"):
        ZOOptimizer([torch.zeros(3)], mech, lr=0.1)
