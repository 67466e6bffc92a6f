"""The options of `paczero privacy` and `paczero bench`: one line naming the option."""

import pytest

from paczero.errors import UserError
from paczero.options import BenchArgs, PrivacyArgs, validate_options

BENCH = dict(model="tiny-llama", track="lora", pool=16, mechanism="mezo", dtype="auto")
BENCH |= dict(device="cpu", micro_batch=8, repeats=2, warmup=0)


def refused(model, values) -> str:
    with pytest.raises(UserError) as err:
        validate_options(model, values)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_privacy_takes_exactly_one_budget():
    assert validate_options(PrivacyArgs, {"mi": 0.1, "command": "privacy"}).mi == 0.1
    assert validate_options(PrivacyArgs, {"epsilon": 2.0, "delta": 1e-5}).delta == 1e-5
    assert "exactly one of --mi" in refused(PrivacyArgs, {})
    assert "exactly one of --mi" in refused(PrivacyArgs, {"mi": 0.1, "epsilon": 1.0})


@pytest.mark.parametrize(
    ("values", "needles"),
    [
        ({"mi": 0.7}, ["--mi", "below log 2"]),
        ({"mi": -0.1}, ["--mi", ">= 0 nats"]),
        ({"epsilon": 0.0}, ["--epsilon", "must be > 0"]),
        ({"epsilon": float("inf")}, ["--epsilon"]),
        ({"epsilon": 1.0, "delta": 1.0}, ["--delta"]),
    ],
)
def test_privacy_refuses_a_budget_that_bounds_nothing(values, needles):
    message = refused(PrivacyArgs, values)
    assert all(needle in message for needle in needles), message


def test_bench_options_are_named_as_typed_on_the_command_line(tmp_path):
    args = validate_options(BenchArgs, {**BENCH, "json_path": str(tmp_path / "b.json")})
    assert args.pool == 16 and args.nproc == 1
    assert "--micro-batch" in refused(BenchArgs, {**BENCH, "micro_batch": 0})
    assert "--pool" in refused(BenchArgs, {**BENCH, "pool": 1})
    assert "--device" in refused(BenchArgs, {**BENCH, "device": "gpu"})
    assert "--json" in refused(BenchArgs, {**BENCH, "json_path": str(tmp_path)})
    (tmp_path / "file").write_text("x")
    message = refused(BenchArgs, {**BENCH, "json_path": str(tmp_path / "file" / "b.json")})
    assert "--json" in message and "is a file, not a directory" in message
