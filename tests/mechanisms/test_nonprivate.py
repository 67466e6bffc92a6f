"""MeZO, the non-private ablations, and the mechanism registry."""

import json

import numpy as np
import pytest

from paczero.config import validate_config
from paczero.errors import UserError
from paczero.mechanisms import (
    REGISTRY,
    MeZO,
    StepContext,
    build_mechanism,
    mechanism_config,
    mechanism_keys,
)
from paczero.privacy.randomness import RandomStream

POOL = 30


@pytest.fixture(scope="module")
def make(make_mechanism):
    """This module's mechanisms: a pool of POOL rows, 10 steps, M = 6 where it applies."""

    def build(name, **keys):
        if "subsets" in mechanism_keys(name):
            keys.setdefault("subsets", 6)
        return make_mechanism(name, pool=POOL, **keys)

    return build


def ctx(pub, sec, step=0, indices=None):
    indices = np.arange(POOL) if indices is None else np.asarray(indices)
    return StepContext(step, 0, indices, pub, sec)


@pytest.fixture
def g():
    out = np.random.default_rng(0).normal(0.2, 2.0, size=POOL)
    out[0] = 50.0  # an outlier that clipping must tame
    return out


PRIVATE = {"paczero-zpl", "paczero-mi", "dpzero", "dpzo", "dpaggzo", "dp-sgd"}
DP = {"dpzero", "dpzo", "dpaggzo", "dp-sgd"}


def test_every_registered_mechanism_describes_itself():
    dp = {"epsilon": 8.0, "clip": 1.0, "expected_batch": 4}
    for name, cls in REGISTRY.items():
        fields = {"budget": 0.1} if name == "paczero-mi" else {}
        fields = dp if name in DP else fields
        if name == "dp-sgd":  # RDP calibrates in milliseconds; the others cover PLD
            fields = {**dp, "accountant": "rdp"}
        if "subsets" in mechanism_keys(name):
            fields = {**fields, "subsets": 4}
        mech = build_mechanism(mechanism_config(name, **fields), pool_size=8, steps=3, directions=2)
        assert cls.name == mech.name == name and mech.directions == 2 and mech.steps == 3
        assert mech.private == (name in PRIVATE)
        section = mech.privacy_report().to_json()
        assert section["framework"] == (
            "dp" if name in DP else "pac" if name in PRIVATE else "none"
        )
        assert section["guarantee"]


def test_the_config_validates_names_and_keys_against_the_registry():
    with pytest.raises(UserError, match="unknown mechanism 'nope'; choose one of mezo"):
        validate_config({"mechanism": {"name": "nope"}})
    # Each mechanism's own check runs during config validation, with the run's sizes.
    with pytest.raises(UserError, match="mechanism.clip"):
        validate_config({"mechanism": {"name": "dpzero", "epsilon": 1, "expected_batch": 4}})
    small = {"data": {"num_train": 8}, "train": {"batch_size": 8}}
    with pytest.raises(UserError, match="smaller than mechanism.subsets"):
        validate_config({**small, "mechanism": {"name": "paczero-zpl", "subsets": 16}})
    # M left out is sized to the pool (the largest even M <= min(128, pool))
    assert validate_config({**small, "mechanism": {"name": "paczero-zpl"}}).mechanism.subsets == 8
    with pytest.raises(UserError, match="mechanism.budget"):
        validate_config({"mechanism": {"name": "paczero-mi"}})
    # ... and the same check when a mechanism is built by hand.
    with pytest.raises(UserError, match="mechanism.clip"):
        build_mechanism(
            mechanism_config("dpzero", epsilon=1, expected_batch=4),
            pool_size=8,
            steps=3,
            directions=1,
        )


def test_mezo_releases_the_plain_mean_without_clipping(make, g):
    with pytest.raises(UserError, match="unknown config key 'mechanism.clip' for mechanism 'mezo'"):
        make("mezo", clip=1.0)  # MeZO never clips: the key is refused, not ignored
    mech, pub, sec = make("mezo")
    rel = mech.release(g, ctx(pub, sec))
    assert rel.coeff == pytest.approx(g.mean(), rel=1e-15)
    assert (rel.kind, rel.charge, rel.private) == ("nonprivate", 0.0, {})
    assert rel.public == {"mean": rel.coeff}
    assert MeZO(pool_size=POOL, steps=1).release(g, ctx(pub, sec)).coeff == rel.coeff
    # A minibatch is averaged over its own rows.
    rel = mech.release(g[:5], ctx(pub, sec, indices=np.arange(5)))
    assert rel.coeff == pytest.approx(g[:5].mean())


def test_full_mean_and_sign_clip_first(make, g):
    clipped = np.clip(g, -1.0, 1.0)
    mean, _, _ = make("full-mean", clip=1.0)
    sign, pub, sec = make("full-sign", clip=1.0)
    assert mean.release(g, ctx(pub, sec)).coeff == pytest.approx(clipped.mean(), rel=1e-15)
    rel = sign.release(g, ctx(pub, sec))
    assert rel.coeff == np.sign(clipped.mean()) and rel.kind == "nonprivate"
    # The clip can flip the sign: a single large outlier against many small negatives.
    h = np.full(POOL, -0.5)
    h[0] = 100.0
    unclipped, _, _ = make("full-sign")
    assert unclipped.release(h, ctx(pub, sec)).coeff == 1.0
    assert sign.release(h, ctx(pub, sec)).coeff == -1.0
    # Ties read +1.
    assert sign.release(np.zeros(POOL), ctx(pub, sec)).coeff == 1.0


@pytest.mark.parametrize("name", ["secret-mean", "secret-sign"])
def test_secret_ablations_use_the_secret_subset(make, name, g):
    mech, pub, sec = make(name, clip=1.0, subsets=6)
    star = mech.private_state_dict()["secret_index"]
    assert star == int(sec.generator("secret-index").integers(6))
    members = mech.membership[:, star]
    clipped = np.clip(g, -1.0, 1.0)
    expected = clipped[members].mean()
    rel = mech.release(g, ctx(pub, sec))
    want = expected if name == "secret-mean" else (1.0 if expected >= 0 else -1.0)
    assert rel.coeff == pytest.approx(want, rel=1e-12)
    assert rel.private["secret_index"] == star
    assert rel.private["secret_mean"] == pytest.approx(expected, rel=1e-12)
    assert not {"secret_index", "secret_mean", "secret_sign"} & set(rel.public)
    assert "secret_index" not in mech.state_dict()
    json.dumps(rel.public, allow_nan=False)
    # Minibatch: the mean runs over batch ∩ S*'s subset.
    idx = np.array([1, 4, 7, 8, 20, 25])
    rel = mech.release(g[idx], ctx(pub, sec, indices=idx))
    sub = clipped[idx][members[idx]]
    expected = sub.mean() if sub.size else 0.0
    assert rel.private["secret_mean"] == pytest.approx(expected, rel=1e-12)


def test_secret_index_comes_from_the_secret_stream(make):
    drawn = {
        make("secret-sign", secret=s)[0].private_state_dict()["secret_index"] for s in range(30)
    }
    assert len(drawn) > 3  # varies with the secret root
    one = make("secret-sign", secret=5, public=0)[0]
    two = make("secret-sign", secret=5, public=1)[0]
    assert one.private_state_dict() == two.private_state_dict()  # not from the public stream


def test_secret_ablation_state_round_trip(make):
    mech, pub, sec = make("secret-mean")
    fresh = build_mechanism(
        mechanism_config("secret-mean", subsets=6), pool_size=POOL, steps=10, directions=1
    )
    fresh.load_state_dict(mech.state_dict(), mech.private_state_dict())
    fresh.setup(pub, RandomStream(1234, "secret"))  # a restored S* is never re-drawn
    assert fresh.private_state_dict() == mech.private_state_dict()


def test_random_sign_is_a_public_coin_independent_of_g(make, g):
    mech, pub, sec = make("random-sign")
    coins = []
    for step in range(30):
        one = mech.release(g, ctx(pub, sec, step=step))
        two = mech.release(-g, ctx(pub, RandomStream(77, "secret"), step=step))
        expected = pub.generator("random-sign", step, 0).integers(2)
        assert one.coeff == two.coeff == (1.0 if expected else -1.0)
        coins.append(one.coeff)
    assert set(coins) == {-1.0, 1.0}


@pytest.mark.parametrize("name", ["full-sign", "secret-sign", "random-sign", "full-mean"])
def test_ablations_skip_all_zero(make, name):
    mech, pub, sec = make(name, skip_all_zero=True)
    rel = mech.release(np.zeros(POOL), ctx(pub, sec))
    assert (rel.coeff, rel.kind, rel.public["skip_reason"]) == (0.0, "skip", "all-zero")
    plain, pub, sec = make(name)
    assert plain.release(np.zeros(POOL), ctx(pub, sec)).kind == "nonprivate"


def test_nonprivate_mechanisms_report_no_spend(make):
    for name in ["mezo", "full-mean", "secret-sign", "random-sign"]:
        mech = make(name)[0]
        assert mech.private is False and mech.spent() == {} and not mech.exhausted


def test_bad_input_rejected(make, g):
    mech, pub, sec = make("mezo")
    with pytest.raises(ValueError, match="non-finite"):
        mech.release(np.full(POOL, np.inf), ctx(pub, sec))
    with pytest.raises(ValueError, match="one length"):
        mech.release(g[:3], ctx(pub, sec))
