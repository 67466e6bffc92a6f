"""PACZero-ZPL and PACZero-MI: release rules, accounting, posterior math, secret separation."""

import functools
import json
import math

import numpy as np
import pytest

from paczero.errors import UserError
from paczero.mechanisms import PACZeroMI, PACZeroZPL, StepContext, mechanism_config
from paczero.privacy.channels import biawgn_mi, binary_entropy, bsc_mi
from paczero.privacy.posterior import bsc_update, gaussian_update
from paczero.privacy.randomness import RandomStream

SECRET_KEYS = {"secret_index", "secret_sign", "secret_mean", "noise", "flip"}


def streams(public=0, secret=1):
    return RandomStream(public, "public"), RandomStream(secret, "secret")


def ctx(step, direction, pub, sec, indices):
    return StepContext(step, direction, np.asarray(indices), pub, sec)


@pytest.fixture(scope="module")
def make(make_mechanism):
    """This module's mechanisms: a pool of 40 rows unless a test says otherwise."""
    return functools.partial(make_mechanism, pool=40)


def dump(release):
    """The public part of a release, as the ledger would write it."""
    record = {"coeff": release.coeff, "kind": release.kind, "charge": release.charge}
    return json.dumps({**record, **release.public}, sort_keys=True, allow_nan=False)


class TripwireStream(RandomStream):
    """A secret stream that fails the test if anything draws from it."""

    def generator(self, purpose, *counters):
        raise AssertionError(f"secret stream read for {purpose!r}")


def random_g(rng, n):
    """Per-example derivatives whose drift makes some steps unanimous and others not."""
    drift = rng.choice([0.0, 0.3, 3.0, -3.0]) * rng.random()
    return rng.normal(drift, 1.0, size=n)


# ---------------------------------------------------------------- ZPL


def test_zpl_unanimous_releases_the_common_sign(make):
    mech, pub, sec = make("paczero-zpl", subsets=8)
    for sign in (1.0, -1.0):
        rel = mech.release(sign * (5.0 + np.arange(40.0)), ctx(0, 0, pub, sec, np.arange(40)))
        assert (rel.coeff, rel.kind, rel.charge) == (sign, "unanimous", 0.0)
        assert rel.public["unanimous"] is True
        assert rel.public["frac_plus"] == (1.0 if sign > 0 else 0.0)
        assert rel.public["n_plus"] == (8 if sign > 0 else 0)
        assert rel.private == {}


def mixed_g(mech):
    """g with +1 on subset 0's members and -1 elsewhere: subset signs disagree."""
    return np.where(mech.membership[:, 0], 1.0, -1.0)


def test_zpl_disagreement_is_a_public_coin(make):
    mech, pub, sec = make("paczero-zpl", subsets=8)
    coins = []
    for step in range(40):
        rel = mech.release(mixed_g(mech), ctx(step, 1, pub, sec, np.arange(40)))
        expected = pub.generator("zpl-coin", step, 1).integers(2)
        assert rel.kind == "coin" and rel.charge == 0.0
        assert rel.coeff == (1.0 if expected else -1.0)
        assert rel.public["unanimous"] is False and 0 < rel.public["n_plus"] < 8
        coins.append(rel.coeff)
    assert set(coins) == {1.0, -1.0}


def test_zpl_skip_mode_releases_nothing_on_disagreement(make):
    mech, pub, sec = make("paczero-zpl", subsets=8, disagreement="skip")
    rel = mech.release(mixed_g(mech), ctx(0, 0, pub, sec, np.arange(40)))
    assert (rel.coeff, rel.kind, rel.charge) == (0.0, "skip", 0.0)
    rel = mech.release(np.full(40, -2.0), ctx(1, 0, pub, sec, np.arange(40)))
    assert (rel.coeff, rel.kind) == (-1.0, "unanimous")


def test_zpl_skip_all_zero(make):
    g = np.zeros(40)
    plain, pub, sec = make("paczero-zpl", subsets=8)
    rel = plain.release(g, ctx(0, 0, pub, sec, np.arange(40)))
    # The M signs agree only by the tie rule sign(0) = +1: no agreement, so not unanimous;
    # ZPL treats it as a disagreement (a public coin: distributed as the tie rule's +1 move,
    # z being symmetric).
    assert rel.kind == "coin" and abs(rel.coeff) == 1.0 and rel.charge == 0.0
    assert rel.public["unanimous"] is False and rel.public["all_zero"] is True
    skipping, pub, sec = make("paczero-zpl", subsets=8, skip_all_zero=True)
    rel = skipping.release(g, ctx(0, 0, pub, sec, np.arange(40)))
    assert (rel.coeff, rel.kind, rel.charge) == (0.0, "skip", 0.0)
    assert rel.public["skip_reason"] == "all-zero"
    # A single nonzero derivative is a real signal: no skip.
    g[3] = -1.0
    rel = skipping.release(g, ctx(1, 0, pub, sec, np.arange(40)))
    assert rel.kind != "skip"


def test_zpl_clip_applies_before_subset_means(make):
    # One huge positive outlier drags every subset holding it positive unless clipped.
    g = np.full(40, -1.0)
    g[0] = 1e6
    raw, pub, sec = make("paczero-zpl", subsets=8)
    assert raw.release(g, ctx(0, 0, pub, sec, np.arange(40))).kind == "coin"
    clipped, pub, sec = make("paczero-zpl", subsets=8, clip=1.0)
    rel = clipped.release(g, ctx(0, 0, pub, sec, np.arange(40)))
    assert (rel.coeff, rel.kind) == (-1.0, "unanimous")


def test_zpl_minibatch_uses_batch_rows_only(make):
    mech, pub, sec = make("paczero-zpl", subsets=8, pool=40)
    idx = np.array([5, 9, 12, 30, 31, 38])
    a = mech.membership[idx]
    g = np.array([1.0, -2.0, 0.5, 3.0, -1.0, 0.25])
    naive = [g[a[:, j]].mean() if a[:, j].any() else 0.0 for j in range(8)]
    n_plus = sum(m >= 0 for m in naive)
    rel = mech.release(g, ctx(0, 0, pub, sec, idx))
    assert rel.public["n_plus"] == n_plus
    assert rel.public["empty_subsets"] == sum(not a[:, j].any() for j in range(8))


def run_zpl(make, secret, k=2, steps=100):
    mech, pub, sec = make("paczero-zpl", subsets=16, pool=60, steps=steps, directions=k, public=7)
    rng = np.random.default_rng(99)  # the same g sequence for both runs
    lines = []
    for step in range(steps):
        for direction in range(k):
            g = random_g(rng, 60)
            tripwire = TripwireStream(secret, "secret")
            rel = mech.release(g, ctx(step, direction, pub, tripwire, np.arange(60)))
            lines.append(dump(rel))
            assert rel.charge == 0.0 and rel.private == {}
    return lines, mech


def test_zpl_public_output_is_independent_of_the_secret(make):
    one, mech_one = run_zpl(make, secret=1)
    two, mech_two = run_zpl(make, secret=2)
    assert one == two  # byte-identical ledger lines over 200 releases
    assert mech_one.state_dict() == mech_two.state_dict()
    kinds = {json.loads(line)["kind"] for line in one}
    assert kinds == {"unanimous", "coin"}  # both branches were exercised
    # S* itself was drawn at setup, from the secret stream, and kept private.
    assert 0 <= mech_one.private_state_dict()["secret_index"] < 16
    assert "secret_index" not in mech_one.state_dict()
    assert mech_one.spent() == {"charged": 0.0}


# ---------------------------------------------------------------- MI: budget


def mi_signs(rng, m):
    """Subset signs: sometimes unanimous, usually split."""
    if rng.random() < 0.3:
        return np.full(m, rng.choice([-1, 1]), dtype=np.int8)
    signs = rng.choice([-1, 1], size=m).astype(np.int8)
    signs[0], signs[1] = 1, -1
    return signs


@pytest.mark.parametrize("release", ["gaussian", "randomized-response"])
@pytest.mark.parametrize("allocation", ["adaptive", "uniform"])
def test_mi_never_overspends(make, release, allocation):
    budget, steps, k, m = 0.3, 150, 2, 16
    mech, pub, sec = make(
        "paczero-mi",
        subsets=m,
        pool=m,
        steps=steps,
        directions=k,
        budget=budget,
        allocation=allocation,
        release=release,
    )
    rng = np.random.default_rng(4)
    total, kinds = 0.0, set()
    for step in range(steps):
        for direction in range(k):
            rel = mech.release_signs(mi_signs(rng, m), ctx(step, direction, pub, sec, []))
            kinds.add(rel.kind)
            total += rel.charge
            assert rel.charge >= 0.0 and mech.used <= budget and total <= budget * (1 + 1e-12)
            assert rel.charge <= rel.public["release_budget"]
            q = min(rel.public["q"], 1.0 - rel.public["q"])
            if rel.kind == "noisy":
                assert rel.charge == rel.public["release_budget"]
                leak = (
                    biawgn_mi(q, rel.public["sigma"])
                    if release == "gaussian"
                    else bsc_mi(q, rel.public["flip_prob"])
                )
                assert leak <= rel.charge and leak >= rel.charge * (1 - 1e-8)
    assert {"free", "noisy"} <= kinds
    assert mech.spent()["charged"] == pytest.approx(total, rel=1e-12)
    if allocation == "adaptive":  # the last step takes everything left
        assert mech.exhausted


def split_signs(m):
    return np.array([1, -1] * (m // 2), dtype=np.int8)


def test_mi_stops_when_spent(make):
    mech, pub, sec = make("paczero-mi", subsets=8, pool=8, steps=4, budget=0.2)
    for step in range(4):
        assert not mech.exhausted
        rel = mech.release_signs(split_signs(8), ctx(step, 0, pub, sec, []))
        assert rel.kind == "noisy"
    assert mech.exhausted and mech.used <= 0.2
    assert mech.spent() == {"charged": mech.used, "budget": 0.2}
    # Past the end a disputed sign is withheld (no budget), a settled one is still free.
    rel = mech.release_signs(split_signs(8), ctx(4, 0, pub, sec, []))
    assert (rel.coeff, rel.kind, rel.charge) == (0.0, "skip", 0.0)
    rel = mech.release_signs(np.ones(8, dtype=np.int8), ctx(5, 0, pub, sec, []))
    assert (rel.kind, rel.charge) == ("free", 0.0)
    assert mech.used <= 0.2


def test_mi_tiny_budget_is_respected(make):
    budget, steps = 1e-4, 1000
    mech, pub, sec = make("paczero-mi", subsets=4, pool=4, steps=steps, budget=budget)
    signs = np.array([1, -1, 1, -1], dtype=np.int8)
    charges = []
    for step in range(steps):
        rel = mech.release_signs(signs, ctx(step, 0, pub, sec, []))
        charges.append(rel.charge)
        assert mech.used <= budget
        q = min(rel.public["q"], 1 - rel.public["q"])
        assert rel.kind == "noisy" and biawgn_mi(q, rel.public["sigma"]) <= rel.charge
    assert math.fsum(charges) <= budget
    assert math.fsum(charges) >= budget * (1 - 1e-9)  # all steps disputed: all spent
    assert mech.exhausted


def test_mi_allocation_values(make):
    def run(allocation):
        fields = dict(subsets=4, pool=4, steps=10, directions=2, budget=1.0)
        mech, pub, sec = make("paczero-mi", allocation=allocation, **fields)
        out = []
        for step in range(7):
            # Steps 0-4 unanimous (free, charge 0), then disputed steps.
            signs = np.ones(4, dtype=np.int8) if step < 5 else split_signs(4)
            for direction in range(2):
                rel = mech.release_signs(signs, ctx(step, direction, pub, sec, []))
                out.append((rel.public["step_budget"], rel.public["release_budget"], rel.charge))
        return out

    adaptive, uniform = run("adaptive"), run("uniform")
    assert adaptive[0] == pytest.approx((0.1, 0.05, 0.0))
    # After five free steps: (B - 0) / (T - 5) = 0.2 per step, 0.1 per direction, set at
    # direction 0 and kept for direction 1 although the spend changed in between.
    assert adaptive[10] == pytest.approx((0.2, 0.1, 0.1))
    assert adaptive[11] == pytest.approx((0.2, 0.1, 0.1))
    assert adaptive[12] == pytest.approx((0.8 / 4, 0.1, 0.1))
    assert all(u[:2] == pytest.approx((0.1, 0.05)) for u in uniform)
    assert uniform[10][2] == pytest.approx(0.05) and uniform[12][2] == pytest.approx(0.05)


def test_mi_last_release_never_rounds_past_the_budget(make):
    # With these values used + (B - used) > B in floating point: the naive charge overshoots.
    budget, used = 0.9313970874327678, 0.24656091509616646
    assert used + (budget - used) > budget
    mech, pub, sec = make("paczero-mi", subsets=4, pool=4, steps=2, budget=budget)
    state = mech.state_dict()
    state["used"] = used
    mech.load_state_dict(state, mech.private_state_dict())
    rel = mech.release_signs(split_signs(4), ctx(1, 0, pub, sec, []))  # last step: all left
    assert rel.kind == "noisy" and used + rel.charge <= budget
    assert mech.used <= budget and mech.exhausted


def test_mi_direction_zero_sets_the_step_budget_and_releases_are_ordered(make):
    mech, pub, sec = make("paczero-mi", subsets=4, pool=4, steps=5, directions=2, budget=1.0)
    with pytest.raises(RuntimeError, match="direction 0"):
        mech.release_signs(split_signs(4), ctx(0, 1, pub, sec, []))
    mech.release_signs(split_signs(4), ctx(0, 0, pub, sec, []))
    with pytest.raises(RuntimeError, match="once, in order"):
        mech.release_signs(split_signs(4), ctx(0, 0, pub, sec, []))
    with pytest.raises(ValueError, match="direction 2"):
        mech.release_signs(split_signs(4), ctx(1, 2, pub, sec, []))


# ---------------------------------------------------------------- MI: posterior math


def load_posterior(mech, post, secret_index):
    state = mech.state_dict()
    state["log_posterior"] = [None if p == 0 else math.log(p) for p in post]
    mech.load_state_dict(state, {"secret_index": secret_index})


def test_mi_noiseless_step_charges_exactly_the_entropy_and_free_steps_nothing(make):
    mech, pub, sec = make("paczero-mi", subsets=4, pool=4, steps=2, budget=0.1)
    load_posterior(mech, [0.999, 0.0005, 0.0003, 0.0002], secret_index=2)
    signs = np.array([-1, 1, -1, 1], dtype=np.int8)  # q = 0.0007 + tiny, H_b(q) < 0.05
    rel = mech.release_signs(signs, ctx(0, 0, pub, sec, []))
    q = 0.0005 + 0.0002
    # The secret sign without noise, charged H_b(q) > 0: it depends on S*, so it is not "free".
    assert rel.kind == "noiseless" and rel.coeff == -1.0  # s_{S*} with S* = 2
    assert rel.public["q"] == pytest.approx(q, rel=1e-12)
    assert rel.charge == pytest.approx(binary_entropy(q), rel=1e-12) and rel.charge > 0
    assert mech.used == rel.charge
    # The attacker learnt s_{S*} = -1: candidates 1 and 3 are ruled out.
    np.testing.assert_allclose(mech.posterior, [0.999 / 0.9993, 0, 0.0003 / 0.9993, 0])
    state = mech.state_dict()
    assert state["log_posterior"][1] is None and state["log_posterior"][3] is None
    # Now the signs agree on the posterior's support: q = 0 exactly, charge 0.
    rel = mech.release_signs(np.array([-1, 1, -1, -1], dtype=np.int8), ctx(1, 0, pub, sec, []))
    assert (rel.kind, rel.charge, rel.public["q"], rel.public["unanimous"]) == (
        "free",
        0.0,
        0.0,
        False,
    )


def test_mi_gaussian_posterior_update_by_hand(make):
    mech, pub, sec = make("paczero-mi", subsets=4, pool=4, steps=1, budget=0.2)
    signs = np.array([1, 1, -1, -1], dtype=np.int8)
    rel = mech.release_signs(signs, ctx(0, 0, pub, sec, []))
    assert rel.kind == "noisy" and rel.public["q"] == 0.5
    r, sigma = rel.public["release_value"], rel.public["sigma"]
    assert r == rel.private["secret_sign"] + sigma * rel.private["noise"]
    assert rel.coeff == (1.0 if r >= 0 else -1.0)
    like = np.exp(-((r - signs) ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(mech.posterior, like / like.sum(), rtol=1e-12)
    # 0.2 nats at q = 1/2 is a fairly strong channel.
    assert 1.0 < sigma < 3.0


def test_mi_randomized_response_update_by_hand(make):
    mech, pub, sec = make(
        "paczero-mi", subsets=4, pool=4, steps=1, budget=0.2, release="randomized-response"
    )
    signs = np.array([1, -1, -1, -1], dtype=np.int8)
    rel = mech.release_signs(signs, ctx(0, 0, pub, sec, []))
    assert rel.kind == "noisy" and "release_value" not in rel.public
    rho, y = rel.public["flip_prob"], rel.coeff
    assert y == rel.private["secret_sign"] * (-1 if rel.private["flip"] else 1)
    like = np.where(signs == y, 1 - rho, rho)
    np.testing.assert_allclose(mech.posterior, like / like.sum(), rtol=1e-12)
    assert bsc_mi(0.25, rho) == pytest.approx(0.2, rel=1e-8)


@pytest.mark.parametrize("release", ["gaussian", "randomized-response"])
def test_mi_one_noisy_step_leaks_its_charge(make, release):
    """Monte Carlo: I(S*; release) = E[log pi_post(S*) - log pi_prior(S*)] matches the charge."""
    prior = np.array([0.3, 0.05, 0.15, 0.2, 0.1, 0.2])
    signs = np.array([1, -1, 1, -1, -1, 1], dtype=np.int8)
    mech, pub, sec = make("paczero-mi", subsets=6, pool=6, steps=1, budget=0.05, release=release)
    load_posterior(mech, prior, secret_index=0)
    rel = mech.release_signs(signs, ctx(0, 0, pub, sec, []))
    assert rel.kind == "noisy" and rel.charge == pytest.approx(0.05, rel=1e-12)

    n = 200_000
    rng = np.random.default_rng(2024)
    secret = rng.choice(6, size=n, p=prior)
    s = signs[secret].astype(float)
    log_prior = np.log(prior)
    if release == "gaussian":
        sigma = rel.public["sigma"]
        post = gaussian_update(log_prior, signs, s + sigma * rng.normal(size=n), sigma)
    else:
        rho = rel.public["flip_prob"]
        y = np.where(rng.random(n) < rho, -s, s)
        post = bsc_update(log_prior, signs, y, rho)
    gain = post[np.arange(n), secret] - log_prior[secret]
    mi, se = gain.mean(), gain.std() / math.sqrt(n)
    assert se < 0.05 * 0.02
    assert abs(mi - rel.charge) < 4 * se


@pytest.mark.parametrize(
    "release,budget,runs", [("gaussian", 0.5, 300), ("randomized-response", 1.35, 600)]
)
def test_mi_posterior_is_bayes_calibrated_over_runs(make, release, budget, runs):
    """Many runs with S* ~ uniform: the tracked posterior must be the exact Bayes posterior.

    Two identities of an exact posterior are checked: E[pi_T(S*)] = E[sum_j pi_T(j)^2], and
    (chain rule, exact calibration and exact free-step charges) E[log M pi_T(S*)] = E[used].
    """
    m = 4
    table = np.array(
        [
            [1, 1, -1, -1],
            [1, -1, 1, -1],
            [1, 1, 1, 1],
            [1, -1, -1, 1],
            [-1, 1, 1, 1],
            [1, 1, -1, -1],
            [1, -1, 1, -1],
        ],
        dtype=np.int8,
    )
    on_secret, self_overlap, gain_minus_used = [], [], []
    for run in range(runs):
        mech, pub, sec = make(
            "paczero-mi",
            subsets=m,
            pool=m,
            steps=len(table),
            budget=budget,
            release=release,
            secret=1000 + run,
        )
        for step, signs in enumerate(table):
            mech.release_signs(signs, ctx(step, 0, pub, sec, []))
        post = mech.posterior
        star = mech.private_state_dict()["secret_index"]
        on_secret.append(post[star])
        self_overlap.append(np.sum(post**2))
        gain_minus_used.append(math.log(m * post[star]) - mech.used)
    on_secret, self_overlap = np.array(on_secret), np.array(self_overlap)
    diff = on_secret - self_overlap
    assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(runs)
    assert on_secret.mean() > 0.3  # the posterior did learn (uniform would be 0.25)
    gmu = np.array(gain_minus_used)
    assert abs(gmu.mean()) < 4 * gmu.std() / math.sqrt(runs)


# ---------------------------------------------------------------- MI: state and secrets


def run_mi(mech, pub, sec, steps, start=0, k=2, seed=5):
    rng = np.random.default_rng(seed)
    out = []
    for step in range(start, start + steps):
        for direction in range(k):
            g = random_g(rng, mech.pool_size)
            rel = mech.release(g, ctx(step, direction, pub, sec, np.arange(mech.pool_size)))
            out.append((dump(rel), json.dumps(rel.private, sort_keys=True)))
    return out


@pytest.mark.parametrize("load_first", [False, True])
def test_mi_state_round_trip_gives_identical_releases(make, load_first):
    fields = dict(subsets=16, pool=64, steps=40, directions=2, budget=0.5, secret=3)
    mech, pub, sec = make("paczero-mi", **fields)
    run_mi(mech, pub, sec, 20)
    public = json.loads(json.dumps(mech.state_dict(), allow_nan=False))
    private = json.loads(json.dumps(mech.private_state_dict()))
    assert "secret_index" not in public and set(private) == {"secret_index"}
    expected = run_mi(mech, pub, sec, 20, start=20, seed=6)

    cfg = mechanism_config("paczero-mi", subsets=16, budget=0.5)
    fresh = PACZeroMI(cfg, pool_size=64, steps=40, directions=2)
    if load_first:
        fresh.load_state_dict(public, private)
    # A resumed run with OS entropy has a new secret root: S* must come from the saved state.
    other_pub, other_sec = streams(0, 999)
    assert int(other_sec.generator("secret-index").integers(16)) != private["secret_index"]
    fresh.setup(other_pub, other_sec)
    if not load_first:
        fresh.load_state_dict(public, private)
    assert fresh.private_state_dict() == private
    assert fresh.state_dict() == public
    # Noise draws are keyed by (step, direction) in the secret stream: replay with the original.
    got = run_mi(fresh, other_pub, sec, 20, start=20, seed=6)
    assert got == expected


def test_mi_refuses_state_of_another_membership_matrix(make):
    mech, pub, sec = make("paczero-mi", subsets=8, pool=20, budget=0.5)
    state = mech.state_dict()
    other, _, _ = make("paczero-mi", subsets=8, pool=20, budget=0.5, public=1)
    with pytest.raises(ValueError, match="membership"):
        other.load_state_dict(state, mech.private_state_dict())
    wrong_budget, _, _ = make("paczero-mi", subsets=8, pool=20, budget=0.4)
    with pytest.raises(ValueError, match="budget"):
        wrong_budget.load_state_dict(state, mech.private_state_dict())


@pytest.mark.parametrize("release", ["gaussian", "randomized-response"])
def test_mi_public_fields_never_hold_the_secret(make, release):
    mech, pub, sec = make(
        "paczero-mi", subsets=8, pool=32, steps=30, budget=0.3, release=release, secret=11
    )
    rng = np.random.default_rng(8)
    kinds = set()
    for step in range(30):
        rel = mech.release(random_g(rng, 32), ctx(step, 0, pub, sec, np.arange(32)))
        kinds.add(rel.kind)
        assert not SECRET_KEYS & set(rel.public)
        assert {"secret_index", "secret_sign"} <= set(rel.private)
        assert rel.private["secret_index"] == mech.private_state_dict()["secret_index"]
        json.dumps(rel.public, allow_nan=False)  # ledger-safe
        assert {"q", "unanimous", "frac_plus", "step_budget"} <= set(rel.public)
        assert ("release_value" in rel.public) == (release == "gaussian")
        assert ("sigma" if release == "gaussian" else "flip_prob") in rel.public
    assert {"free", "noisy"} <= kinds
    assert "secret_index" not in mech.state_dict()


def test_all_zero_means_are_not_unanimous(make):
    """-F1 objective: an all-zero step (no answer changed) is no agreement of the subsets."""
    mech, pub, sec = make("paczero-mi", subsets=8, pool=16, budget=0.5)
    rel = mech.release(np.zeros(16), ctx(0, 0, pub, sec, np.arange(16)))
    assert rel.public["unanimous"] is False and rel.public["all_zero"] is True
    assert rel.kind == "free" and rel.charge == 0.0  # every candidate reads +1: no secret
    skipping, pub, sec = make("paczero-zpl", subsets=8, skip_all_zero=True)
    rel = skipping.release(np.zeros(40), ctx(0, 0, pub, sec, np.arange(40)))
    assert rel.public["unanimous"] is False and rel.kind == "skip"
    real, pub, sec = make("paczero-zpl", subsets=8)
    rel = real.release(np.full(40, 2.0), ctx(0, 0, pub, sec, np.arange(40)))
    assert rel.public["unanimous"] is True and "all_zero" not in rel.public


def test_mi_skip_all_zero_charges_nothing(make):
    mech, pub, sec = make("paczero-mi", subsets=8, pool=16, budget=0.5, skip_all_zero=True)
    rel = mech.release(np.zeros(16), ctx(0, 0, pub, sec, np.arange(16)))
    assert (rel.coeff, rel.kind, rel.charge) == (0.0, "skip", 0.0)
    assert mech.used == 0.0 and np.allclose(mech.posterior, 1 / 8)


def test_mi_requires_a_budget():
    with pytest.raises(UserError, match="budget"):
        PACZeroMI(mechanism_config("paczero-mi", subsets=4), pool_size=10, steps=5)
    assert PACZeroZPL(pool_size=200, steps=5).subsets == 128
