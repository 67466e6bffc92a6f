"""`paczero audit` of one run: PACZero transcripts, a leak caught, DP canaries, bad input."""

import json
import math
import shutil
import stat

import numpy as np
import pytest

from paczero.auditing import audit
from paczero.auditing import rebuild as rebuild_module
from paczero.cli import main
from paczero.trainer import train

pytestmark = pytest.mark.filterwarnings("ignore:seed.secret is set")

TINY = ["data.num_dev=16", "data.num_test=16", "train.eval_every=0", "train.batch_size=full"]
TINY += ["model.device=cpu"]  # the suite assumes a CPU (a visible GPU is not used)


def run(tmp_path, name, *overrides):
    out = tmp_path / name
    train("smoke", out=out, overrides=[*TINY, *overrides], progress=False)
    return out


# ---------------------------------------------------------------- PACZero runs


def test_zpl_posterior_stays_uniform_and_the_model_attack_finds_nothing(tmp_path):
    zpl = ["data.num_train=32", "mechanism.name=paczero-zpl", "mechanism.subsets=8"]
    zpl += ["train.steps=8", "train.lr=0.05"]
    scores = []
    for secret in (1, 2, 3):
        report = audit(run(tmp_path, f"zpl{secret}", *zpl, f"seed.secret={secret}")).data
        transcript, model = report["attacks"]
        assert transcript["map_probability"] == pytest.approx(1 / 8, abs=1e-15)
        assert transcript["posterior_entropy"] == pytest.approx(math.log(8))
        assert transcript["rank"] == 8 and transcript["guesses"] == 0
        assert model["epsilon_lower_bound"] == 0.0 and report["epsilon_lower_bound"] == 0.0
        assert report["verdict"] == "chance"
        assert "M = 8 candidates cannot show a leak" in report["notes"][0]
        assert all(item["ok"] for item in report["checks"].values())
        assert report["checks"]["subset signs"]["checked"] == 8
        scores.append(model["scores"])
    # No ZPL release depends on S*: "informative" passes replay without a forward pass.
    fast = audit(tmp_path / "zpl3", write=False, passes="informative").data
    assert fast["attacks"][0] == transcript and "subset signs" not in fast["checks"]
    # The model does not depend on the secret, so neither does the attack: exactly chance.
    assert scores[0] == scores[1] == scores[2]


def test_a_non_private_ablation_is_caught(tmp_path, capsys):
    """secret-mean releases S*'s subset mean: the transcript attack names S* among 128."""
    leak = ["data.num_train=128", "mechanism.name=secret-mean", "mechanism.subsets=128"]
    out = run(tmp_path, "leak", *leak, "train.steps=4", "train.lr=0.5", "seed.secret=5")
    report = audit(out).data
    transcript = report["attacks"][0]
    assert transcript["identified"] and transcript["rank"] == 1
    assert transcript["correct"] == transcript["guesses"] == 128
    assert report["epsilon_lower_bound"] > 0.25
    assert report["verdict"] == "leak" and report["claim"] is None
    assert all(item["ok"] for item in report["checks"].values())
    # The audit reveals S*: its outputs are private.
    for name in ("audit.json", "audit.png"):
        assert stat.S_IMODE((out / "private" / name).stat().st_mode) == 0o600
    assert json.loads((out / "private" / "audit.json").read_text())["truth"]["secret_index"] >= 0
    # A --json / --plot path of the user's holds the same secret: owner-only there too.
    elsewhere = tmp_path / "elsewhere"
    audit(out, json_path=elsewhere / "a.json", plot_path=elsewhere / "a.png")
    for name in ("a.json", "a.png"):
        assert stat.S_IMODE((elsewhere / name).stat().st_mode) == 0o600
    capsys.readouterr()
    assert main(["audit", str(out), "--check"]) == 2  # no bound to check
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "claims no privacy bound" in err[0]


def test_naming_s_star_among_few_candidates_is_not_called_a_leak(tmp_path, capsys):
    """With M = 8 a named S* is a 1-in-8 event: the line says so instead of "leak". That
    line, the ranks and the counts name S* (with the public membership matrix and model):
    the private report holds them, the terminal and --check show the verdict and bounds."""
    leak = ["data.num_train=16", "mechanism.name=secret-mean", "mechanism.subsets=8"]
    out = run(tmp_path, "few", *leak, "train.steps=2", "seed.secret=2")
    report = audit(out, write=False)
    assert report.data["attacks"][0]["identified"] and report.verdict == "chance"
    assert report.data["summary"].startswith("the transcript attack named S* among 8 candidates")
    assert "1 time in 8 by chance: one run cannot tell this from chance" in report.private_text()
    assert "(1/8)" in report.private_text()
    capsys.readouterr()
    assert main(["audit", str(out), "--quiet"]) == 0
    shown = capsys.readouterr().out
    assert "Verdict: the attack did no better than chance (95% confidence)" in shown
    assert "Claim: none (secret-mean is not private)" in shown
    assert str(out / "private" / "audit.json") in shown
    public = [line for line in shown.splitlines() if not line.startswith("Private report")]
    for secret in ("named", "rank", "(1/8)", "correct", "guesses", "accuracy", "epsilon >="):
        assert all(secret not in line for line in public), secret
    stored = json.loads((out / "private" / "audit.json").read_text())
    assert stored["attacks"][0]["rank"] == 1 and stored["summary"] == report.data["summary"]


def test_mi_posterior_rebuilt_from_the_log_matches_the_mechanism(tmp_path):
    mi = ["data.num_train=32", "mechanism.name=paczero-mi", "mechanism.budget=0.33"]
    mi += ["mechanism.subsets=8", "train.steps=12", "train.lr=0.05", "seed.secret=4"]
    out = run(tmp_path, "mi", *mi, "zo.directions=2")
    report = audit(out, write=False).data
    checks = report["checks"]
    assert checks["posterior"]["ok"] and checks["posterior"]["checked"] == 12
    assert checks["q"]["checked"] == 24 and checks["q"]["ok"]
    assert checks["final model"]["ok"] and checks["loss"]["ok"]
    assert report["claim"]["mi_bound"] == 0.33
    assert report["epsilon_lower_bound"] <= report["claim"]["epsilon"]
    fast = audit(out, write=False, passes="informative").data  # every step is informative
    assert fast["attacks"][0] == report["attacks"][0] and fast["checks"]["q"]["checked"] == 24


def test_a_recomputation_that_disagrees_with_the_log_is_reported(tmp_path, monkeypatch):
    """The checks can fail: one recomputed sign vector off by one sign is caught."""
    zpl = ["data.num_train=32", "mechanism.name=paczero-zpl", "mechanism.subsets=8"]
    out = run(tmp_path, "zpl", *zpl, "train.steps=4", "seed.secret=1")
    real, calls = rebuild_module.subset_signs, []

    def off_by_one(means):
        signs = real(means)
        calls.append(1)
        if len(calls) == 3:
            signs = signs.copy()
            signs[0] = -signs[0]
        return signs

    monkeypatch.setattr(rebuild_module, "subset_signs", off_by_one)
    report = audit(out, write=False).data
    assert report["checks"]["subset signs"] == {"checked": 4, "agree": 3, "ok": False}
    assert "disagrees with the release log" in report["summary"]


# ---------------------------------------------------------------- DP with canaries

DP = ["data.num_train=16", "mechanism.name=dpzero", "mechanism.epsilon=1", "mechanism.clip=1"]
DP += ["mechanism.expected_batch=8", "mechanism.accountant=rdp", "train.steps=8", "train.lr=0.05"]
DP += ["audit.canaries=32"]


def test_dp_canaries_never_beat_the_claimed_epsilon(tmp_path):
    for secret in (1, 2, 3):
        out = run(tmp_path, f"dp{secret}", *DP, f"seed.secret={secret}")
        report = audit(out, write=False).data
        assert report["canaries"] == 32 and report["pool"] == 48
        attack = report["attacks"][0]
        assert attack["epsilon_lower_bound"] <= report["claim"]["epsilon"]
        assert report["verdict"] in ("chance", "within")
        record = json.loads((out / "private" / "canaries.json").read_text())
        assert sum(record["included"]) == report["truth"]["canaries_included"]
        assert json.loads((out / "result.json").read_text())["metrics"]["splits"]["pool"] == 48
        for public in ("releases.jsonl", "result.json", "config.yaml", "metrics.jsonl"):
            assert "included" not in (out / public).read_text()


def test_the_canary_audit_flags_a_leak_beyond_the_claim(tmp_path, monkeypatch, capsys):
    """The auditor can fail: scores that give the inclusion away beat epsilon 1."""
    out = run(tmp_path, "dp", *DP, "seed.secret=1")
    truth = json.loads((out / "private" / "canaries.json").read_text())["included"]
    real = rebuild_module.rebuild

    def leaky(view, **kwargs):
        rebuilt = real(view, **kwargs)
        rebuilt.base_losses = np.zeros(len(truth))
        rebuilt.final_losses = -np.asarray(truth, dtype=float)  # members' loss "dropped"
        return rebuilt

    monkeypatch.setattr("paczero.auditing.one_run.rebuild", leaky)
    report = audit(out, write=False).data
    assert report["attacks"][0]["accuracy"] >= 0.9  # balanced guesses: all but the odd one out
    assert report["verdict"] == "violation"
    assert report["summary"].startswith("the attack found more than the bound allows")
    capsys.readouterr()
    assert main(["audit", str(out), "--check", "--json", str(tmp_path / "a.json")]) == 1
    assert "report this" in capsys.readouterr().out


# ---------------------------------------------------------------- bad input


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    zpl = ["data.num_train=32", "mechanism.name=paczero-zpl", "mechanism.subsets=4"]
    out = run(tmp_path, "zpl", *zpl, "train.steps=2", "seed.secret=1")
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("private"))
    mezo = run(tmp_path, "mezo", "data.num_train=16", "train.steps=2")
    cases = [
        (["audit", str(copy)], "no private/ folder"),
        (["audit", str(mezo)], "randomised no membership"),
        (["audit", str(mezo), "--check"], "randomised no membership"),
        (["audit", str(out), "--guesses", "4"], "--guesses is for canary audits"),
        (["audit", str(out), "--trials", "0"], "--trials must be at least 1"),
        (
            ["train", "smoke", "--out", str(tmp_path / "c"), "--set", "audit.canaries=4"]
            + ["--set", "mechanism.name=paczero-zpl", "--set", "mechanism.subsets=4"],
            "audit.canaries is for runs without candidate subsets",
        ),
    ]
    for argv, needle in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], (argv, err)


def test_the_audit_covers_the_selection_stage(tmp_path):
    """A run that chose its prompt (no task.template): the attacker redoes the selection
    from the base model and the pool (it matches the log), scores the subsets by how they
    back each decision, and stays at chance: the decisions do not depend on S*."""
    zpl = ["data.num_train=32", "mechanism.name=paczero-zpl", "mechanism.subsets=8"]
    zpl += ["train.steps=2", "task.template=null", "seed.secret=4"]
    report = audit(run(tmp_path, "selected", *zpl), write=False).data
    names = [a["name"] for a in report["attacks"]]
    assert names == ["transcript", "model", "selection"]
    selection = report["attacks"][2]
    assert report["checks"]["selection"]["ok"] and report["checks"]["selection"]["checked"] == 1
    assert all(item["ok"] for item in report["checks"].values())  # the chosen prompt replayed
    assert selection["candidates"] == 8 and 1 <= selection["rank"] <= 8
    assert selection["epsilon_lower_bound"] == 0.0 and report["verdict"] == "chance"
