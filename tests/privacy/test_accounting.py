"""The DP accounting adapter: calibration against dp-accounting itself, and bad targets."""

import math

import dp_accounting
import pytest
from dp_accounting import pld, rdp

from paczero.privacy.accounting import (
    DPAccountant,
    calibrate_noise_multiplier,
    dp_event,
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
