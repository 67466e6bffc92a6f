"""The DP accounting adapter: calibration against dp-accounting itself, and bad targets."""

import math

import dp_accounting
import pytest
from dp_accounting import pld, rdp

from paczero.privacy.accounting import (
    DPAccountant,
    calibrate_noise_multiplier,
    dp_event,
    epsilon_schedule,
    epsilon_spent,
)


def _independent(epsilon, delta, q, steps, accountant, near):
    """dp_accounting's own search (library defaults, absolute tol) around our answer."""
    fresh = pld.PLDAccountant if accountant == "pld" else rdp.RdpAccountant

    def event(mu):
        return dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(mu)), steps
        )

    bracket = dp_accounting.ExplicitBracketInterval(0.7 * near, 1.4 * near)
    return dp_accounting.calibrate_dp_mechanism(
        fresh, event, epsilon, delta, bracket_interval=bracket, tol=1e-4 * near
    )


@pytest.mark.parametrize(
    "epsilon, delta, q, steps, accountant, rel",
    [
        (0.5, 1e-5, 0.064, 1000, "pld", 2e-3),
        (0.5, 1e-5, 0.064, 20000, "rdp", 1e-2),  # our RDP orders are a subset: a bit more noise
        (1.0, 1e-6, 0.01, 2000, "rdp", 1e-2),
    ],
)
def test_calibration_matches_dp_accounting(epsilon, delta, q, steps, accountant, rel):
    mu = calibrate_noise_multiplier(epsilon, delta, q, steps, accountant=accountant)
    reference = _independent(epsilon, delta, q, steps, accountant, mu)
    assert mu == pytest.approx(reference, rel=rel)
    assert mu >= reference * (1 - 2e-3)  # never noticeably less noise than the library's root
    spent = epsilon_spent(mu, delta, q, steps, accountant=accountant)
    assert spent <= epsilon  # the conservative side
    assert spent == pytest.approx(epsilon, rel=1e-2)  # and within the tolerance of the target


def test_pure_laplace_is_exact_and_composes_with_the_count():
    mu = calibrate_noise_multiplier(2.0, 0.0, 0.064, 1000, noise="laplace")
    spent = epsilon_spent(mu, 0.0, 0.064, 1000, noise="laplace")
    assert spent <= 2.0 and spent == pytest.approx(2.0, rel=1e-12)
    # One Poisson-subsampled eps0 step costs log(1 + q (e^eps0 - 1)).
    assert epsilon_spent(mu, 0.0, 0.064, 1, noise="laplace") == pytest.approx(
        math.log1p(0.064 * math.expm1(1 / mu))
    )
    with_count = calibrate_noise_multiplier(
        2.0, 0.0, 0.064, 1000, noise="laplace", count_epsilon=0.1
    )
    assert with_count > mu
    assert epsilon_spent(with_count, 0.0, 0.064, 1000, noise="laplace", count_epsilon=0.1) <= 2.0


def test_noisy_count_is_part_of_the_budget():
    plain = calibrate_noise_multiplier(2.0, 1e-5, 0.064, 1000, accountant="rdp")
    counted = calibrate_noise_multiplier(
        2.0, 1e-5, 0.064, 1000, accountant="rdp", count_epsilon=0.1
    )
    assert counted > plain
    event = dp_event(counted, 0.064, 1000, count_epsilon=0.1)
    assert isinstance(event, dp_accounting.ComposedDpEvent)
    spent = epsilon_spent(counted, 1e-5, 0.064, 1000, accountant="rdp", count_epsilon=0.1)
    assert 1.98 <= spent <= 2.0
    assert epsilon_spent(counted, 1e-5, 0.064, 0, count_epsilon=0.1) == 0.1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epsilon": 0.0}, "epsilon must be"),
        ({"epsilon": -1.0}, "epsilon must be"),
        ({"epsilon": math.nan}, "epsilon must be"),
        ({"delta": 0.0}, "delta must be in (0, 1)"),
        ({"delta": 1.0}, "delta must be in (0, 1)"),
        ({"sample_rate": 1.5}, "sample rate must be in (0, 1]"),
        ({"sample_rate": 0.0}, "sample rate must be in (0, 1]"),
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"count_epsilon": 1.0}, "must be below the target"),
        ({"noise": "laplace", "accountant": "rdp"}, "no Poisson-subsampled Laplace"),
        ({"accountant": "moments"}, "accountant must be one of"),
    ],
)
def test_bad_targets_are_rejected_with_one_line(kwargs, message):
    args = {"epsilon": 1.0, "delta": 1e-5, "sample_rate": 0.1, "steps": 10, **kwargs}
    with pytest.raises(ValueError) as err:
        calibrate_noise_multiplier(
            args.pop("epsilon"),
            args.pop("delta"),
            args.pop("sample_rate"),
            args.pop("steps"),
            **args,
        )
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unreachable_target_says_what_to_change():
    with pytest.raises(ValueError, match="out of reach over 20000 steps.*fewer steps"):
        calibrate_noise_multiplier(
            0.01, 1e-5, 0.5, 20000, accountant="rdp", max_noise_multiplier=50.0
        )


def test_accountant_object_memoises_and_round_trips():
    acc = DPAccountant.calibrate(1.0, 1e-5, 0.05, 500, accountant="rdp")
    assert acc.method == "rdp" and acc.calibration_s >= 0
    eps = [acc.epsilon(t) for t in (0, 1, 100, 500)]
    assert eps[0] == 0.0 and eps == sorted(eps) and eps[-1] <= 1.0
    assert acc.epsilon(500) is acc.epsilon(500)
    again = DPAccountant.from_state_dict(acc.state_dict())
    assert again.state_dict() == acc.state_dict()
    assert again.epsilon(500) == eps[-1]


# Published calibrations: opacus.accountants.utils.get_noise_multiplier (Opacus 1.4.0, default
# accountant "rdp", epsilon_tolerance 0.01) at target_epsilon = 0.95 eps (DP-AggZO's code, the
# other 0.05 eps on the Laplace count) or at eps itself (DPZero paper's code, no count).
# Computed with opacus 1.4.0 itself, not with this module.
PUBLISHED = [
    # (eps, q, T, count eps, Opacus's multiplier)
    (2.0, 0.064, 20000, 0.1, 20.46875),  # PACZero's DPZero K=1 at eps 2 (PLD: 18.40)
    (0.2, 0.064, 20000, 0.01, 180.0),
    (0.5, 0.064, 1000, 0.025, 16.5625),  # DP-AggZO K=64 at eps 0.5
    (6.0, 0.064, 1000, 0.3, 1.904296875),
    (2.0, 0.008, 20000, 0.0, 2.548828125),  # DPZero paper, eps 2, batch 8 of 1000
]


@pytest.mark.parametrize("epsilon, q, steps, count, published", PUBLISHED)
def test_opacus_rdp_reproduces_the_published_multiplier(epsilon, q, steps, count, published):
    mu = calibrate_noise_multiplier(
        epsilon, 1e-5, q, steps, accountant="opacus-rdp", count_epsilon=count
    )
    assert mu == pytest.approx(published, abs=1e-3)
    spent = epsilon_spent(mu, 1e-5, q, steps, accountant="opacus-rdp", count_epsilon=count)
    assert spent <= epsilon  # the published noise meets its target...
    assert spent > epsilon - 0.02  # ...within Opacus's tolerance (0.01 on the Gaussian part)


def test_opacus_rdp_gives_more_noise_than_pld_at_the_same_target():
    # The example: DPZero eps 2, q = 64/1000, T = 20000, delta 1e-5, noisy count.
    args = (2.0, 1e-5, 0.064, 20000)
    ours = calibrate_noise_multiplier(*args, count_epsilon=0.1)  # the default, pld
    published = calibrate_noise_multiplier(*args, accountant="opacus-rdp", count_epsilon=0.1)
    assert ours == pytest.approx(18.40, abs=0.01)
    assert published == pytest.approx(20.47, abs=0.01)
    assert epsilon_spent(ours, *args[1:], count_epsilon=0.1) <= 2.0
    # Both meet eps 2; the published noise is what PLD would have given at a smaller epsilon.
    assert epsilon_spent(published, *args[1:], count_epsilon=0.1) < 1.8


def test_opacus_rdp_epsilon_is_gaussian_rdp_at_opacus_orders_plus_the_count():
    mu, q, steps = 20.46875, 0.064, 20000
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    acc = rdp.RdpAccountant(orders, dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE)
    acc.compose(
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(mu)), steps
        )
    )
    gaussian = acc.get_epsilon(1e-5)
    assert gaussian == pytest.approx(1.8930490129, abs=1e-8)  # Opacus 1.4.0's get_epsilon
    spent = epsilon_spent(mu, 1e-5, q, steps, accountant="opacus-rdp", count_epsilon=0.1)
    assert spent == pytest.approx(gaussian + 0.1, rel=1e-12)  # basic composition
    assert epsilon_spent(mu, 1e-5, q, 0, accountant="opacus-rdp", count_epsilon=0.1) == 0.1


def test_opacus_rdp_accountant_round_trips_and_reports_what_it_spent():
    acc = DPAccountant.calibrate(
        0.5, 1e-5, 0.064, 1000, accountant="opacus-rdp", count_epsilon=0.025
    )
    assert acc.method == "opacus-rdp" and acc.noise_multiplier == pytest.approx(16.5625)
    again = DPAccountant.from_state_dict(acc.state_dict())
    assert again.state_dict() == acc.state_dict()
    assert again.epsilon(1000) == acc.epsilon(1000) <= 0.5
    assert acc.epsilon(1000) == pytest.approx(0.4932522, abs=1e-6)  # 0.4682522 + 0.025
    assert acc.epsilon(1) < acc.epsilon(500) < acc.epsilon(1000)


def test_opacus_rdp_rejects_subsampled_laplace_but_keeps_pure_dp():
    with pytest.raises(ValueError, match="opacus-rdp accountant has no Poisson-subsampled"):
        calibrate_noise_multiplier(1.0, 1e-5, 0.1, 10, noise="laplace", accountant="opacus-rdp")
    pure = calibrate_noise_multiplier(1.0, 0.0, 0.1, 10, noise="laplace", accountant="opacus-rdp")
    assert pure == calibrate_noise_multiplier(1.0, 0.0, 0.1, 10, noise="laplace")


SCHEDULES = [  # (accountant, noise multiplier, delta, q, steps, noise, count epsilon)
    ("pld", 4.6, 1e-5, 1.0, 6, "gaussian", 0.0),
    ("pld", 3.0, 1e-6, 0.25, 5, "gaussian", 0.05),
    ("pld", 3.0, 1e-5, 0.5, 4, "laplace", 0.0),
    ("rdp", 1.0, 1e-5, 0.064, 300, "gaussian", 0.0),
    ("rdp", 12.6, 1e-5, 1.0, 40, "gaussian", 0.1),
    ("opacus-rdp", 16.5625, 1e-5, 0.064, 300, "gaussian", 0.025),
    ("pld", 2.0, 0.0, 0.1, 50, "laplace", 0.1),  # pure epsilon-DP
]


def _library_epsilon(accountant, mu, delta, q, steps, noise, count):
    """dp_accounting's own answer for the same events at its default discretisation."""
    if delta == 0 or accountant == "opacus-rdp":  # closed form / Opacus search: compared below
        return None
    relation = dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
    fresh = (
        pld.PLDAccountant(relation)
        if accountant == "pld"
        else rdp.RdpAccountant(epsilon_schedule.__globals__["RDP_ORDERS"], relation)
    )
    base = dp_accounting.GaussianDpEvent(mu) if noise == "gaussian" else None
    base = base or dp_accounting.LaplaceDpEvent(mu)
    event = dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(q, base), steps)
    if count:
        event = dp_accounting.ComposedDpEvent([dp_accounting.LaplaceDpEvent(1 / count), event])
    return fresh.compose(event).get_epsilon(delta)


@pytest.mark.parametrize("accountant, mu, delta, q, steps, noise, count", SCHEDULES)
def test_epsilon_schedule_is_the_per_step_computation(
    accountant, mu, delta, q, steps, noise, count
):
    kw = {"accountant": accountant, "noise": noise, "count_epsilon": count}
    schedule = list(epsilon_schedule(mu, delta, q, steps, **kw))
    assert len(schedule) == steps
    some = range(1, steps + 1) if steps <= 6 else (1, 2, steps // 2, steps - 1, steps)
    for t in some:
        assert schedule[t - 1] == pytest.approx(epsilon_spent(mu, delta, q, t, **kw), rel=1e-9)
        library = _library_epsilon(accountant, mu, delta, q, t, noise, count)
        if library is not None:  # never below dp_accounting's value at its discretisation
            assert schedule[t - 1] >= library * (1 - 1e-12)
    assert all(a < b for a, b in zip(schedule[:-1], schedule[1:], strict=True))  # grows
    tail = list(epsilon_schedule(mu, delta, q, steps, start=steps - 1, **kw))
    assert tail == pytest.approx(schedule[-2:], rel=1e-12)  # a resumed run's tail


def test_a_long_pld_schedule_answers_its_first_steps_while_the_rest_is_computed():
    """Start-up in seconds: T = 1000 with pld took 99 s to prepare before the first step; now
    the first values come from the background filler while it is still far from T."""
    acc = DPAccountant(noise_multiplier=4.13, delta=1e-5, sample_rate=0.064, steps=1000)
    acc.prepare()
    first = [acc.epsilon(t) for t in (1, 2)]
    assert len(acc._schedule.values) < 1000  # not waited for the whole schedule
    assert first == pytest.approx([epsilon_spent(4.13, 1e-5, 0.064, t) for t in (1, 2)])
    acc._schedule.stopped.set()


def test_a_failing_schedule_is_raised_to_the_step_that_waits_for_it(monkeypatch):
    import paczero.privacy.accounting as accounting

    def broken(*args, **kw):
        raise ArithmeticError("no")

    monkeypatch.setattr(accounting, "epsilon_spent", broken)
    acc = DPAccountant(noise_multiplier=3.0, delta=1e-5, sample_rate=0.5, steps=4)
    acc.prepare()
    with pytest.raises(RuntimeError, match="schedule failed at step 1"):
        acc.epsilon(1)


def test_prepared_accountant_answers_from_the_schedule_and_resumes_identically():
    acc = DPAccountant(noise_multiplier=3.0, delta=1e-5, sample_rate=0.5, steps=4)
    before = [acc.epsilon(t) for t in range(1, 5)]  # the accountant, step by step
    acc.prepare()
    assert acc._schedule is not None
    assert [acc.epsilon(t) for t in range(1, 5)] == pytest.approx(before, rel=1e-9)
    again = DPAccountant.from_state_dict(acc.state_dict())  # what resume rebuilds
    again.prepare(start=3)  # from the resumed run's next step
    assert again._schedule.start == 3
    assert [again.epsilon(t) for t in range(5)] == [acc.epsilon(t) for t in range(5)]
