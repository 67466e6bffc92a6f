"""The first-order step on tiny models: per-example clipping, secret noise, learning."""

import builtins

import numpy as np
import pytest
import torch

from paczero.config import ModelConfig
from paczero.engine.firstorder import FirstOrderOptimizer, freeze_unsupported
from paczero.errors import UserError
from paczero.mechanisms import mechanism_config
from paczero.mechanisms.firstorder import DPSGD, Backprop
from paczero.models import load_model
from paczero.privacy.randomness import RandomStream, public_stream
from paczero.tasks import TaskConfig, build_task
from paczero.tasks.sst2 import synthetic_sst2

POOL = 16
DP = dict(epsilon=8.0, clip=0.5, expected_batch=8, accountant="rdp")


def _setup(model="tiny-llama", track="lora", rows=POOL):
    loaded = load_model(ModelConfig(name=model, track=track, device="cpu"), seed=0)
    task = build_task(TaskConfig(), loaded.tokenizer)
    pool = task.encode(synthetic_sst2(rows, 2, seed=1)["train"])
    return loaded, task, pool


def _optimizer(loaded, task, pool, mechanism, secret=1, **kw):
    return FirstOrderOptimizer(
        loaded.model,
        loaded.trainable,
        mechanism,
        kw.pop("lr", 0.05),
        batches=lambda rows: task.batches(pool, rows, 4),
        losses=lambda batch: task.losses(loaded.model, batch),
        public=public_stream(0),
        secret=RandomStream(secret, "secret"),
        **kw,
    )


def _dpsgd(steps=3, **keys):
    return DPSGD(mechanism_config("dp-sgd", **{**DP, **keys}), pool_size=POOL, steps=steps)


def _tensors(loaded):
    return [p.detach().clone() for _, p in loaded.trainable]


@pytest.mark.parametrize(("model", "track"), [("tiny-llama", "lora"), ("tiny-opt", "full")])
def test_each_examples_clipped_gradient_has_norm_at_most_c(model, track):
    loaded, task, pool = _setup(model, track)
    with torch.no_grad():
        for _, p in loaded.trainable:
            p.mul_(3.0)  # gradients well above C
    opt = _optimizer(loaded, task, pool, _dpsgd(clip=1e-3))
    rows = np.arange(POOL)
    sums = opt.gradient_sums(rows, clip=1e-3)
    total = torch.sqrt(sum(s.double().pow(2).sum() for s in sums.sums))
    assert sums.count == POOL and sums.clipped == POOL  # every example exceeded C
    assert float(total) <= POOL * 1e-3 * (1 + 1e-6)
    for row in rows:  # one example alone: its clipped gradient has norm C (it was clipped)
        one = opt.gradient_sums(np.array([row]), clip=1e-3)
        norm = float(torch.sqrt(sum(s.double().pow(2).sum() for s in one.sums)))
        assert norm <= 1e-3 * (1 + 1e-5) and norm > 0.99e-3


@pytest.mark.parametrize(("model", "track"), [("tiny-llama", "lora"), ("tiny-opt", "full")])
def test_a_batch_clips_each_example_by_its_own_norm(model, track):
    """With C between the examples' norms (some clipped, some not), the batch's clipped sum
    is the sum of each example's gradient clipped alone: every factor meets its own row."""
    loaded, task, pool = _setup(model, track)
    opt = _optimizer(loaded, task, pool, _dpsgd())
    rows = np.arange(8)
    alone = [opt.gradient_sums(np.array([r]), clip=1e6).sums for r in rows]
    norms = [float(torch.sqrt(sum(t.double().pow(2).sum() for t in g))) for g in alone]
    clip = float(np.median(norms))
    batch = opt.gradient_sums(rows, clip=clip)
    assert 0 < batch.clipped < len(rows)
    for index, total in enumerate(batch.sums):
        expected = sum(g[index] * min(1.0, clip / n) for g, n in zip(alone, norms, strict=True))
        torch.testing.assert_close(total, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("model", "track"), [("tiny-llama", "lora"), ("tiny-opt", "full")])
def test_unclipped_sums_match_plain_autograd(model, track):
    loaded, task, pool = _setup(model, track)  # tiny-opt ties lm_head to the embedding
    opt = _optimizer(loaded, task, pool, _dpsgd(clip=1e6))
    rows = np.arange(POOL)
    clipped = opt.gradient_sums(rows, clip=1e6)  # C so large nothing is clipped
    plain = opt.gradient_sums(rows, clip=None)  # the .grad autograd accumulates
    assert clipped.clipped == 0
    for a, b in zip(clipped.sums, plain.sums, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_opacus_unsupported_layers_are_frozen_and_named():
    loaded, _, _ = _setup("tiny-llama", "full")
    frozen = freeze_unsupported(loaded.model)
    assert frozen and all("norm" in name for name in frozen)  # LlamaRMSNorm
    params = dict(loaded.model.named_parameters())
    assert all(not params[name].requires_grad for name in frozen)
    assert params["model.embed_tokens.weight"].requires_grad  # nn.Embedding is supported


def _run(secret, steps=2, track="lora"):
    loaded, task, pool = _setup(track=track)
    opt = _optimizer(loaded, task, pool, _dpsgd(steps=steps), secret=secret)
    records = [opt.step() for _ in range(steps)]
    return _tensors(loaded), records, opt


def test_dpsgd_noise_and_sample_come_from_the_secret_stream():
    a, ra, _ = _run(secret=1)
    b, _, _ = _run(secret=1)
    c, rc, _ = _run(secret=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # same secret: same
    assert any(not torch.equal(x, y) for x, y in zip(a, c, strict=True))  # other: differs
    assert [r.rows_secret for r in ra] == [True, True]
    assert any(not np.array_equal(x.rows, y.rows) for x, y in zip(ra, rc, strict=True))


def test_dpsgd_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    _run(secret=1)
    assert torch.equal(torch.get_rng_state(), before)


def test_nothing_sample_dependent_is_public():
    _, records, opt = _run(secret=1)
    for record in records:
        assert record.public == {} and record.kind == "dp-sgd"
        assert {"batch_size", "clipped", "noise_norm"} <= set(record.private)
    assert opt.mechanism.spent()["epsilon"] <= 8.0


def test_backprop_lowers_the_pool_loss_with_public_minibatches():
    loaded, task, pool = _setup(track="lora", rows=32)
    mech = Backprop(mechanism_config("backprop"), pool_size=32, steps=20)
    opt = _optimizer(loaded, task, pool, mech, optimizer="adam", lr=1e-2, batch_size=8)
    before = opt.gradient_sums(np.arange(32), clip=None).loss
    steps = [opt.step() for _ in range(20)]
    after = opt.gradient_sums(np.arange(32), clip=None).loss
    assert after < before - 0.05
    assert not any(s.rows_secret for s in steps) and len(steps[0].rows) == 8


def test_missing_opacus_is_one_line_naming_the_extra(monkeypatch):
    real = builtins.__import__

    def no_opacus(name, *args, **kwargs):
        if name.startswith("opacus"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_opacus)
    loaded, task, pool = _setup()
    with pytest.raises(UserError, match=r"pip install paczero\[dpsgd\]") as err:
        _optimizer(loaded, task, pool, _dpsgd())
    assert "\n" not in str(err.value)
