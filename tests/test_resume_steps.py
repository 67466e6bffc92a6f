"""`resume --set train.steps=N` (issue 36 item 18): allowed where the guarantee does not
depend on the number of steps (PACZero-ZPL: I = 0 at every step; MeZO: no guarantee), the
run then ends at N; refused with the reason where it does (a DP mechanism's noise is
calibrated to epsilon over the planned steps, PACZero-MI splits its budget over them)."""

from __future__ import annotations

import json

import pytest

from paczero.cli import main

from sizes import sets, small_run

BASE = small_run("train.steps=2", "train.batch_size=8", "train.eval_at_start=false")
MECHANISMS = {
    "mezo": ["mechanism.name=mezo"],
    "paczero-zpl": ["mechanism.name=paczero-zpl", "mechanism.subsets=4"],
    "paczero-mi": ["mechanism.name=paczero-mi", "mechanism.subsets=4", "mechanism.budget=0.3"],
    "dpzero": [
        "mechanism.name=dpzero",
        "mechanism.epsilon=2",
        "mechanism.clip=5",
        "mechanism.expected_batch=8",
        "mechanism.accountant=rdp",
    ],
}


def _stopped(tmp_path, mechanism: str):
    """A 2-step run made unfinished (as after a kill at its end): resumable."""
    out = tmp_path / mechanism
    argv = ["train", "smoke", "--out", str(out), "--quiet", *sets(*BASE, *MECHANISMS[mechanism])]
    assert main(argv) == 0
    (out / "result.json").unlink()
    return out


@pytest.mark.parametrize("mechanism", ["mezo", "paczero-zpl"])
def test_resume_may_change_the_steps_where_the_guarantee_does_not_count_them(
    tmp_path, mechanism, capsys
):
    run = _stopped(tmp_path, mechanism)
    assert main(["resume", str(run), "--quiet", *sets("train.steps=3")]) == 0
    lines = (run / "releases.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2]
    result = json.loads((run / "result.json").read_text())
    assert result["privacy"]["steps"] == 3
    changes = json.loads((run / "run.json").read_text())["changes"]
    assert changes == [{"from_step": 2, "set": {"train.steps": 3}}]


@pytest.mark.parametrize(("mechanism", "reason"), [("paczero-mi", "budget"), ("dpzero", "noise")])
def test_resume_refuses_other_steps_where_the_guarantee_counts_them(
    tmp_path, mechanism, reason, capsys
):
    run = _stopped(tmp_path, mechanism)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["resume", str(run), "--quiet", *sets("train.steps=3")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "train.steps" in err and reason in err, err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_resume_refuses_fewer_steps_than_were_taken(tmp_path, capsys):
    run = _stopped(tmp_path, "mezo")
    capsys.readouterr()
    assert main(["resume", str(run), "--quiet", *sets("train.steps=1")]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.steps" in err and "2 steps" in err, err
