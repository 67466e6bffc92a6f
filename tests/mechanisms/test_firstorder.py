"""The first-order mechanisms: their keys, their released gradients, their report."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from paczero.config import load_config
from paczero.engine.firstorder import GradientSums
from paczero.errors import UserError
from paczero.mechanisms import mechanism_config
from paczero.mechanisms.base import StepContext
from paczero.mechanisms.firstorder import Backprop, frozen_note

DP = dict(epsilon=8.0, clip=0.5, expected_batch=8, accountant="rdp")
DPSGD_KEYS = ["mechanism.name=dp-sgd", *(f"mechanism.{k}={v}" for k, v in DP.items())]


def _sums(count=4, clipped=1):
    return GradientSums([torch.ones(3, 2), torch.full((4,), 2.0)], count, 0.0, clipped)


def _ctx(step, mech_streams):
    public, secret = mech_streams
    return StepContext(step, 0, np.arange(16), public, secret)


def test_a_dpsgd_config_without_opacus_is_refused_before_any_model_loads(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "opacus" else real(name, *a)
    )
    with pytest.raises(UserError, match=r"needs Opacus.*pip install paczero\[dpsgd\]") as err:
        load_config("smoke", [*DPSGD_KEYS, "data.num_train=16", "train.batch_size=8"])
    assert "\n" not in str(err.value)
    load_config("smoke", ["mechanism.name=backprop"])  # backprop needs no Opacus


def test_dpsgd_needs_one_target_a_clip_and_an_expected_batch():
    with pytest.raises(UserError, match="one target"):
        mechanism_config("dp-sgd", clip=1.0, expected_batch=8)
    with pytest.raises(UserError, match="one target"):
        mechanism_config("dp-sgd", epsilon=1.0, match_mi=0.1, clip=1.0, expected_batch=8)
    with pytest.raises(UserError, match="mechanism.clip is required"):
        mechanism_config("dp-sgd", epsilon=1.0, expected_batch=8)


def test_first_order_mechanisms_refuse_a_loss_without_gradient_and_user_level_units():
    cfg = SimpleNamespace(task=SimpleNamespace(objective="acc"), data=SimpleNamespace())
    with pytest.raises(ValueError, match="task.objective acc has no gradient"):
        Backprop.check_run(cfg)
    cfg = SimpleNamespace(
        task=SimpleNamespace(objective="ce"), data=SimpleNamespace(group_field="u")
    )
    with pytest.raises(ValueError, match="data.group_field"):
        Backprop.check_run(cfg)


def test_backprop_releases_the_plain_mean_gradient(make_mechanism):
    mech, pub, sec = make_mechanism("backprop", pool=16)
    release = mech.release_gradient(_sums(count=4), _ctx(0, (pub, sec)))
    assert release.kind == "backprop" and release.public == {} and release.private == {}
    assert torch.equal(release.grads[0], torch.full((3, 2), 0.25))
    assert torch.equal(release.grads[1], torch.full((4,), 0.5))


def test_dpsgd_noise_is_keyed_by_step_and_secret_and_divided_by_the_expected_batch(
    make_mechanism,
):
    mech, pub, sec = make_mechanism("dp-sgd", pool=16, steps=3, **DP)
    again, _, _ = make_mechanism("dp-sgd", pool=16, steps=3, **DP)
    other, _, other_sec = make_mechanism("dp-sgd", pool=16, steps=3, secret=2, **DP)
    first = mech.release_gradient(_sums(), _ctx(0, (pub, sec)))
    assert first.kind == "dp-sgd" and first.public == {}
    assert first.private["batch_size"] == 4 and first.private["clipped"] == 1
    same = again.release_gradient(_sums(), _ctx(0, (pub, sec)))
    later = mech.release_gradient(_sums(), _ctx(1, (pub, sec)))
    elsewhere = other.release_gradient(_sums(), _ctx(0, (pub, other_sec)))
    assert all(torch.equal(a, b) for a, b in zip(first.grads, same.grads, strict=True))
    assert not torch.equal(first.grads[0], later.grads[0])
    assert not torch.equal(first.grads[0], elsewhere.grads[0])
    noise = (first.grads[0] * 8 - 1).flatten()  # (sum + noise) / expected batch 8
    expected = mech.gradient_noise(0, 0, torch.ones(3, 2)).flatten()
    torch.testing.assert_close(noise, expected, rtol=1e-5, atol=1e-5)
    assert mech.noise_scale > 0 and mech.steps_done == 2


def test_dpsgd_reports_released_gradients_and_frozen_layers(make_mechanism):
    mech, _, _ = make_mechanism("dp-sgd", pool=16, steps=3, **DP)
    mech.frozen = ("a.norm", "b.norm", "c.norm", "d.norm")
    report = mech.privacy_report().to_json()
    assert report["released"] == "gradients" and "noise_std_of_gradient" in report
    assert report["frozen_layers"] == list(mech.frozen)
    assert (
        report["frozen_note"].startswith("4 trainable tensors") and ", ..." in report["frozen_note"]
    )
    assert frozen_note(()) is None and "..." not in frozen_note(["x"])
