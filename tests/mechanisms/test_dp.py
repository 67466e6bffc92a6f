"""DPZero, DP-ZO and DP-AggZO on plain tensors: sampling, clipping, noise, secrecy, accounting."""

import numpy as np
import pytest

from paczero.config import load_config
from paczero.errors import UserError
from paczero.mechanisms import DPZO, DPAggZO, DPZero, StepContext, build_mechanism, mechanism_config
from paczero.privacy.accounting import DPAccountant
from paczero.privacy.bounds import epsilon_to_mi, mi_to_epsilon

POOL, STEPS, BATCH, CLIP = 200, 20, 40, 1.0
_CALIBRATED: dict = {}


@pytest.fixture(autouse=True)
def _cached_calibration(monkeypatch):
    """Calibration is tested in tests/privacy; here each target is calibrated once."""
    calibrate = DPAccountant.calibrate

    def cached(*args, **kwargs):
        key = (args, tuple(sorted(kwargs.items())))
        if key not in _CALIBRATED:
            _CALIBRATED[key] = calibrate(*args, **kwargs).state_dict()
        return DPAccountant.from_state_dict(_CALIBRATED[key])

    monkeypatch.setattr(DPAccountant, "calibrate", cached)


@pytest.fixture(scope="module")
def make(make_mechanism):
    """This module's DP mechanisms: epsilon 1 (RDP), clip CLIP, expected batch BATCH."""

    def build(name="dpzero", *, steps=STEPS, **keys):
        keys = {"epsilon": 1.0, "clip": CLIP, "expected_batch": BATCH, "accountant": "rdp", **keys}
        return make_mechanism(name, pool=POOL, steps=steps, **keys)

    return build


def ctx(pub, sec, step=0, indices=None):
    return StepContext(step, 0, np.arange(POOL) if indices is None else indices, pub, sec)


@pytest.fixture(scope="module")
def dpzero(make):
    return make("dpzero")


def test_poisson_batches_come_from_the_secret_stream(make, dpzero):
    mech = dpzero[0]
    sizes = [len(mech.batch(t)) for t in range(400)]
    assert np.mean(sizes) == pytest.approx(BATCH, rel=0.03)  # E|B| = qN
    assert np.var(sizes) == pytest.approx(POOL * 0.2 * 0.8, rel=0.2)  # Binomial(N, q)
    assert not np.array_equal(mech.batch(0), mech.batch(1))  # never one batch reused
    np.testing.assert_array_equal(mech.batch(3), mech.batch(3))  # keyed, not stateful
    other_public = make("dpzero", public=99)[0]  # the public seed plays no part
    np.testing.assert_array_equal(other_public.batch(3), mech.batch(3))
    other_secret = make("dpzero", secret=2)[0]
    assert not np.array_equal(other_secret.batch(3), mech.batch(3))


def test_noise_depends_on_the_secret_only(make, dpzero):
    mech, pub, sec = dpzero
    g = np.linspace(-2, 2, 30)
    rel = mech.release(g, ctx(pub, sec, step=4, indices=np.arange(30)))
    assert (rel.kind, rel.charge, rel.public) == ("dp", 0.0, {})  # only the coefficient
    assert set(rel.private) == {"batch_size", "clean", "noise", "clipped"}
    same_public = make("dpzero", secret=2)[0]
    other = same_public.release(g, ctx(pub, sec, step=4, indices=np.arange(30)))
    assert other.coeff != rel.coeff and other.private["clean"] == rel.private["clean"]
    # The public stream (or a generator seeded by the public seed) never yields the noise.
    noise = rel.private["noise"] * BATCH / mech.noise_scale
    for rng in (pub.generator("dp-noise", 4, 0), np.random.default_rng(0)):
        assert rng.normal() != pytest.approx(noise)


def test_clipping_normalisation_and_gaussian_noise_scale(dpzero):
    mech, pub, sec = dpzero
    g = np.array([5.0, -7.0, 0.5, -0.25, 0.0, 1.0])  # two outliers clipped to +-C
    idx = np.arange(g.size)
    coeffs = np.array([mech.release(g, ctx(pub, sec, t, idx)).coeff for t in range(4000)])
    clean = (1.0 - 1.0 + 0.5 - 0.25 + 0.0 + 1.0) / BATCH  # summed, over the EXPECTED batch
    std = mech.accountant.noise_multiplier * CLIP / BATCH
    assert coeffs.mean() == pytest.approx(clean, abs=4 * std / np.sqrt(4000))
    assert coeffs.std() == pytest.approx(std, rel=0.05)
    assert mech.privacy_report().to_json()["noise_std_of_coefficient"] == pytest.approx(std)
    rel = mech.release(g, ctx(pub, sec, 0, idx))
    assert rel.private["clipped"] == 2 and rel.private["clean"] == pytest.approx(clean)


def test_dpzo_laplace_noise_is_pure_dp_with_the_right_scale(make):
    mech, pub, sec = make("dpzo", noise="laplace", delta=0.0, epsilon=2.0)
    assert mech.privacy_report().to_json()["accountant"] == "pure-dp"
    g = np.zeros(3)
    coeffs = np.array([mech.release(g, ctx(pub, sec, t, np.arange(3))).coeff for t in range(4000)])
    scale = mech.accountant.noise_multiplier * CLIP / BATCH
    assert coeffs.var() == pytest.approx(2 * scale**2, rel=0.1)  # Laplace variance 2 b^2
    assert np.mean(np.abs(coeffs)) == pytest.approx(scale, rel=0.05)


def test_dpaggzo_clips_the_k_vector_jointly(make):
    k = 4
    mech, pub, sec = make("dpaggzo", directions=k)
    d = np.zeros((k, 3))
    d[:, 0] = [30.0, 0, 0, 40.0]  # norm 50 > K C = 4: scaled to norm 4
    d[:, 1] = [1.0, 1.0, 0, 0]  # norm sqrt(2): kept
    rels = [mech.release_step(d, ctx(pub, sec, t, np.arange(3))) for t in range(2000)]
    coeffs = np.array([[r.coeff for r in step] for step in rels])  # (T, K)
    expected = (np.array([4 * 0.6, 0, 0, 4 * 0.8]) + np.array([1.0, 1.0, 0, 0])) / BATCH
    std = mech.accountant.noise_multiplier * k * CLIP / BATCH
    np.testing.assert_allclose(rels[0][0].private["clean"], expected[0])
    assert np.all(np.abs(coeffs.mean(axis=0) - expected) < 4 * std / np.sqrt(2000))
    assert coeffs.std(axis=0) == pytest.approx(np.full(k, std), rel=0.06)
    assert np.corrcoef(coeffs.T)[0, 1] == pytest.approx(0.0, abs=0.06)  # independent per k
    assert rels[0][0].private["clipped"] == 1 and rels[0][0].public == {}


def test_spent_follows_the_steps_run_and_meets_the_target(make):
    mech, pub, sec = make("dpzero", steps=50)
    assert mech.spent()["epsilon"] == 0.0 and not mech.exhausted
    for t in range(50):
        mech.release_step(np.zeros((1, 4)), ctx(pub, sec, t, np.arange(4)))
    spent = mech.spent()
    assert "mi" not in spent and spent.get("mi", 0.0) == 0.0  # what the trainer reads per step
    assert 0.99 <= spent["epsilon"] <= 1.0 and spent["delta"] == 1e-5
    assert mech.exhausted
    report = mech.privacy_report().to_json()
    assert report["neighbouring_relation"].startswith("add-or-remove-one")
    assert report["accountant"] == "rdp" and report["denominator"] == "expected"
    assert report["budget"]["matched_mi"] == pytest.approx(epsilon_to_mi(1.0, 1e-5))


@pytest.mark.parametrize(
    "name, keys",
    [
        ("dpzero", {}),
        ("dpzo", {"noise": "laplace", "delta": 0.0}),
        ("dpaggzo", {"directions": 3}),
    ],
)
def test_replace_one_doubles_the_noise_at_the_same_multiplier(make, name, keys):
    """Replace-one adjacency moves the clipped sum by 2C, not C (the DPZero paper's 2C/b on
    the mean): the same draws, twice the std, the same multiplier and epsilon."""
    add, pub, sec = make(name, **keys)
    replace, _, _ = make(name, sensitivity="replace-one", **keys)
    k = keys.get("directions", 1)
    g = np.linspace(-3, 3, k * 12).reshape(k, 12)
    for t in range(3):
        step = ctx(pub, sec, t, np.arange(12))
        for a, r in zip(add.release_step(g, step), replace.release_step(g, step), strict=True):
            assert r.private["noise"] == 2 * a.private["noise"] != 0
            assert r.private["clean"] == a.private["clean"]
    assert replace.accountant.noise_multiplier == add.accountant.noise_multiplier
    assert replace.noise_scale == 2 * add.noise_scale
    ra, rr = add.privacy_report().to_json(), replace.privacy_report().to_json()
    assert rr["noise_std_of_coefficient"] == 2 * ra["noise_std_of_coefficient"]
    assert rr["spent"] == ra["spent"] and rr["noise_multiplier"] == ra["noise_multiplier"]
    added, replaced = ra["neighbouring_relation"], rr["neighbouring_relation"]
    assert added.startswith("add-or-remove-one; sensitivity ")
    assert replaced.startswith("replace-one; sensitivity ")
    assert "add-or-remove-one accounting of the same noise multiplier" in replaced
    if k == 1:
        assert "sensitivity 2C = 2 of the clipped sum" in replaced
        assert "sensitivity C = 1 of the clipped sum" in added


def test_noisy_count_denominator_spends_part_of_epsilon(make):
    mech, pub, sec = make("dpaggzo", directions=2, denominator="noisy-count")
    assert mech.accountant.count_epsilon == pytest.approx(0.05)
    assert abs(mech.divisor - BATCH) < 0.2 * 60  # q (N + Lap(1/0.05)): a few Laplace scales
    assert mech.private_state_dict()["noisy_count"] == pytest.approx(mech.divisor / 0.2)
    assert mech.privacy_report().to_json()["count_epsilon"] == pytest.approx(0.05)
    again = make("dpaggzo", directions=2, denominator="noisy-count", secret=5)[0]
    assert again.divisor != mech.divisor


def test_match_mi_sets_the_target_epsilon(make):
    mech = make("dpzero", epsilon=None, match_mi=0.33)[0]
    target = mi_to_epsilon(0.33, 1e-5)
    assert target == pytest.approx(2.01, abs=0.01)
    budget = mech.privacy_report().to_json()["budget"]
    assert budget["epsilon"] == target and budget["match_mi"] == 0.33
    assert budget["matched_mi"] == pytest.approx(0.33, rel=1e-6)


def test_state_round_trip_and_mismatch(make):
    mech, pub, sec = make("dpzero")
    mech.release_step(np.zeros((1, 2)), ctx(pub, sec, 6, np.arange(2)))
    fresh = make("dpzero")[0]
    fresh.load_state_dict(mech.state_dict(), mech.private_state_dict())
    assert fresh.steps_done == 7
    other = make("dpzero", epsilon=3.0)[0]
    with pytest.raises(UserError, match="calibrated differently"):
        other.load_state_dict(mech.state_dict(), mech.private_state_dict())


@pytest.mark.parametrize(
    "overrides, message",
    [
        ([], "needs a target"),
        (["mechanism.epsilon=0"], "greater than 0"),
        (["mechanism.epsilon=-1"], "greater than 0"),
        (["mechanism.epsilon=1", "mechanism.delta=1"], "less than 1"),
        (["mechanism.epsilon=1", "mechanism.delta=0"], "delta must be in (0, 1)"),
        (["mechanism.epsilon=1", "mechanism.expected_batch=100000"], "rate would exceed 1"),
        (["mechanism.epsilon=1", "mechanism.noise=laplace"], "only for dpzo"),
        (["mechanism.epsilon=1", "mechanism.match_mi=0.3"], "only one of"),
        (["mechanism.epsilon=1", "mechanism.sensitivity=swap"], "'mechanism.sensitivity'"),
    ],
)
def test_bad_configs_fail_with_one_line(overrides, message):
    base = ["mechanism.name=dpzero", "mechanism.clip=1", "mechanism.expected_batch=8"]
    with pytest.raises(UserError) as err:
        load_config("smoke", base + overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unreachable_target_fails_before_training():
    cfg = mechanism_config("dpzero", epsilon=1e-4, clip=1.0, expected_batch=100)
    with pytest.raises(UserError, match="out of reach"):
        build_mechanism(cfg, pool_size=100, steps=20000, directions=1)


def test_classes_are_registered():
    assert (DPZero.name, DPZO.name, DPAggZO.name) == ("dpzero", "dpzo", "dpaggzo")
    assert all(cls.private for cls in (DPZero, DPZO, DPAggZO))
