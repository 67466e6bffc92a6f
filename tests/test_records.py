"""The release record (paczero.records): one type for the line of releases.jsonl."""

import numpy as np
import pytest

from paczero.engine.optim import StepResult
from paczero.mechanisms import mechanism_class
from paczero.mechanisms.base import Release
from paczero.records import ReleaseRecord, release_records, says_unanimity, unanimity

LOGGED = {"step": 2, "lr": 0.5, "seeds": [11, 12], "coeffs": [1.0, -1.0],
          "kinds": ["unanimous", "coin"], "charge": 0.0, "cumulative": 0.0,
          "unanimous": [True, False], "frac_plus": [1.0, 0.5],
          "public": [{"unanimous": True}, {"unanimous": False}], "state": {"digest": "x"},
          "loss": 0.69, "prev": "0" * 64, "sha": "a" * 64}  # fmt: skip


def test_a_logged_record_round_trips_byte_for_byte():
    record = ReleaseRecord.from_json(LOGGED)
    assert record.to_json() == LOGGED and list(record.to_json()) == list(LOGGED)
    assert record.unanimity() == [True, False] and record.agreement() == 0.5
    assert record.amounts(2) == [0.25, -0.25]  # theta -= lr * c / K * z
    assert says_unanimity([record]) and unanimity([record, record]) == [True, False] * 2


def test_kinds_are_checked_against_the_mechanisms():
    with pytest.raises(ValueError, match="kind 'unanimous' is not one of dp"):
        release_records([LOGGED], kinds=mechanism_class("dpzero").kinds)
    with pytest.raises(ValueError, match="lacks coeffs"):
        ReleaseRecord.from_json({k: v for k, v in LOGGED.items() if k != "coeffs"})
    assert release_records([LOGGED], mechanism_class("paczero-zpl").kinds)[0].step == 2


class _Mechanism:
    name, kinds = "toy", ("nonprivate",)

    def spent(self):
        return {"epsilon": 0.25, "delta": 1e-5}

    def state_dict(self):
        return {"steps_done": 3}


def _result(kind: str, secret: bool) -> StepResult:
    release = Release(np.float64(0.5), kind, public={"mean": np.float32(0.5)})
    return StepResult(3, 0.1, [7], [0.5], [release], 0.7, np.arange(4), secret)


def test_of_step_keeps_a_secret_rows_loss_out_and_refuses_an_undeclared_kind():
    public = ReleaseRecord.of_step(_result("nonprivate", secret=False), _Mechanism())
    assert public.loss == 0.7 and public.epsilon == 0.25
    assert public.public == [{"mean": 0.5}] and type(public.public[0]["mean"]) is float
    secret = ReleaseRecord.of_step(_result("nonprivate", secret=True), _Mechanism())
    assert secret.loss is None and "loss" not in secret.to_json()
    with pytest.raises(RuntimeError, match="released a 'noisy'"):
        ReleaseRecord.of_step(_result("noisy", secret=False), _Mechanism())
