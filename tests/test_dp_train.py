"""End to end: a DPZero smoke run reports its DP guarantee, and its noise is secret-keyed."""

import json

import pytest

from paczero.trainer import train

DP = [
    "mechanism.name=dpzero",
    "mechanism.epsilon=2",
    "mechanism.clip=5",
    "mechanism.expected_batch=32",
    "mechanism.accountant=rdp",
    "train.steps=5",
    "train.eval_every=0",
    "train.eval_at_start=false",
    "data.num_dev=16",
    "data.num_test=16",
    "seed.public=3",
]


def _coeffs(run_dir):
    lines = (run_dir / "releases.jsonl").read_text().splitlines()
    return [json.loads(line)["coeffs"] for line in lines]


@pytest.mark.filterwarnings("ignore")
def test_dpzero_run_reports_epsilon_and_differs_by_secret(tmp_path):
    a = train("smoke", out=tmp_path / "a", overrides=[*DP, "seed.secret=1"], progress=False)
    b = train("smoke", out=tmp_path / "b", overrides=[*DP, "seed.secret=2"], progress=False)
    privacy = a.data["privacy"]
    assert privacy["private"] is True and privacy["release_kinds"] == {"dp": 5}
    assert 0 < privacy["spent"]["epsilon"] <= 2.0 and privacy["spent"]["delta"] == 1e-5
    assert privacy["spent"]["epsilon"] == pytest.approx(2.0, rel=1e-2)  # all T steps ran
    assert 0.5 < privacy["posterior_bound"] < 0.881 and privacy["matched_mi"] > 0
    assert privacy["accountant"] == "rdp"
    assert privacy["neighbouring_relation"].startswith("add-or-remove-one")
    assert privacy["budget"]["epsilon"] == 2.0
    ca, cb = _coeffs(a.run_dir), _coeffs(b.run_dir)
    assert len(ca) == len(cb) == 5
    assert all(x != y for x, y in zip(ca, cb, strict=True))  # same public seed, other secret
    public = [json.loads(line)["public"] for line in (a.run_dir / "releases.jsonl").open()]
    assert all(p == [{}] for p in public)  # no batch size, clean mean or noise in public


@pytest.mark.filterwarnings("ignore")
def test_the_log_has_the_epsilon_spent_after_every_step(tmp_path):
    result = train("smoke", out=tmp_path / "r", overrides=[*DP, "seed.secret=3"], progress=False)
    lines = (result.run_dir / "releases.jsonl").read_text().splitlines()
    spent = [json.loads(line)["epsilon"] for line in lines]
    assert len(spent) == 5 and all(e > 0 for e in spent)
    assert spent == sorted(spent) and spent[0] < spent[-1]
    assert spent[-1] == pytest.approx(result.privacy["spent"]["epsilon"], rel=1e-12)
