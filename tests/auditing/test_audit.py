"""`paczero audit`: the statistics, the attacks on tiny runs, canaries, trials, bad input."""

import json
import math
import shutil
import stat

import numpy as np
import pytest
import torch
from scipy.stats import binom

from paczero.auditing import attacks as attacks_module
from paczero.auditing import audit, audit_trials
from paczero.auditing.stats import (
    clopper_pearson,
    fano_bound,
    identification_bound,
    kl_upper_inverse,
    rank_epsilon_lower_bound,
    rank_mi_lower_bound,
    snj_epsilon_lower_bound,
    snj_p_value,
)
from paczero.cli import main
from paczero.privacy.bounds import mi_to_epsilon
from paczero.privacy.channels import kl_bernoulli
from paczero.privacy.randomness import public_stream
from paczero.tasks.canaries import CanaryMaskedTask, builtin_canaries
from paczero.trainer import train

pytestmark = pytest.mark.filterwarnings("ignore:seed.secret is set")

TINY = ["data.num_dev=16", "data.num_test=16", "train.eval_every=0", "train.batch_size=full"]
TINY += ["model.device=cpu"]  # the suite assumes a CPU (a visible GPU is not used)


def run(tmp_path, name, *overrides):
    out = tmp_path / name
    train("smoke", out=out, overrides=[*TINY, *overrides], progress=False)
    return out


# ---------------------------------------------------------------- statistics


def test_snj_p_value_is_the_binomial_tail_without_delta_and_grows_with_it():
    q = 1 / (1 + math.exp(-1.0))
    assert snj_p_value(100, 50, 40, 1.0) == pytest.approx(binom.sf(39, 50, q), rel=1e-12)
    assert snj_p_value(100, 50, 40, 1.0, delta=1e-5) > snj_p_value(100, 50, 40, 1.0)
    assert snj_p_value(100, 50, 0, 3.0) == 1.0


def test_snj_bound_is_zero_at_chance_positive_for_many_right_and_rejected_at_its_value():
    assert snj_epsilon_lower_bound(64, 64, 32) == 0.0
    eps = snj_epsilon_lower_bound(64, 64, 64)
    assert 2.5 < eps < 4.0
    assert snj_p_value(64, 64, 64, eps) < 0.05 <= snj_p_value(64, 64, 64, eps + 1e-3)


def test_snj_bound_is_valid_and_has_power_on_randomized_response():
    """epsilon0-randomized response on independent bits: the lower bound exceeds epsilon0
    in at most ~5% of repetitions, and is clearly positive on average."""
    rng = np.random.default_rng(7)
    eps0, m, reps = 2.0, 200, 200
    keep = 1 / (1 + math.exp(-eps0))
    bounds = []
    for _ in range(reps):
        correct = int(rng.binomial(m, keep))
        bounds.append(snj_epsilon_lower_bound(m, m, correct))
    bounds = np.array(bounds)
    assert np.mean(bounds > eps0) <= 0.09  # 5% plus Monte-Carlo slack
    assert np.mean(bounds) > 1.0


def test_rank_bound_is_zero_above_alpha_and_kl_below():
    assert rank_mi_lower_bound(1 / 16) == 0.0  # 16 candidates: naming S* is 6% by chance
    assert rank_mi_lower_bound(1 / 128) == pytest.approx(kl_bernoulli(0.05, 1 / 128))
    assert rank_epsilon_lower_bound(1 / 128) == pytest.approx(mi_to_epsilon(0.0515373), rel=1e-4)


def test_rank_bound_is_valid_for_a_mechanism_at_its_budget():
    """A mechanism that reveals S* with probability p (else nothing) has I = p ln M; the
    rank bound exceeds I in at most alpha of its runs."""
    rng = np.random.default_rng(3)
    m, p, alpha = 256, 0.3, 0.05
    mi = p * math.log(m)
    over = 0
    for _ in range(2000):
        revealed = rng.random() < p
        rank = 1 if revealed else int(rng.integers(1, m + 1))  # uninformative: S* uniform
        over += rank_mi_lower_bound(rank / m, alpha) > mi
    assert over / 2000 <= alpha


def test_the_counts_of_guesses_tried_can_each_reject_chance():
    from paczero.auditing.attacks import bound_grid

    assert bound_grid(32, 0.05) == [8, 16, 32]  # 4 of 4 right is 1/16 by chance: useless
    assert bound_grid(1000, 0.05) == [125, 250, 500, 1000]
    for m in (4, 16, 64):
        grid = bound_grid(m, 0.05)
        assert grid[-1] == m and all(0.5**r < 0.05 / len(grid) for r in grid if r < m)


def test_identification_bounds():
    assert identification_bound(0.0, 16) == pytest.approx(1 / 16)
    assert identification_bound(0.33, 16) <= fano_bound(0.33, 16)
    p = kl_upper_inverse(0.1, 0.2)
    assert kl_bernoulli(p, 0.1) >= 0.2 - 1e-12 and kl_bernoulli(p - 1e-6, 0.1) < 0.2
    lo, hi = clopper_pearson(5, 10)
    assert lo < 0.5 < hi


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
    real, calls = attacks_module.subset_signs, []

    def off_by_one(means):
        signs = real(means)
        calls.append(1)
        if len(calls) == 3:
            signs = signs.copy()
            signs[0] = -signs[0]
        return signs

    monkeypatch.setattr(attacks_module, "subset_signs", off_by_one)
    report = audit(out, write=False).data
    assert report["checks"]["subset signs"] == {"checked": 4, "agree": 3, "ok": False}
    assert "disagrees with the release log" in report["summary"]


def test_mi_trials_stay_within_the_bound(tmp_path):
    mi = ["data.num_train=32", "mechanism.name=paczero-mi", "mechanism.budget=0.05"]
    mi += ["mechanism.subsets=8", "train.steps=8", "train.lr=0.05", *TINY]
    report = audit_trials("smoke", 8, overrides=mi, seeds=list(range(11, 19)))
    data = report.data
    claim = data["claim"]
    assert data["trials"] == 8 and data["checks_ok"]
    for attack in data["attacks"]:
        assert attack["identify_interval"][0] <= claim["identify_bound"]
        assert attack["accuracy_interval"][0] <= claim["posterior_bound"]
        assert attack["epsilon_lower_bound"] <= claim["epsilon"]
    assert data["verdict"] != "violation"
    assert "over 8 runs" in str(report)


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
    real = attacks_module.rebuild

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


def test_an_excluded_canary_has_derivative_zero():
    from paczero.config import ModelConfig
    from paczero.models import load_model
    from paczero.session import pool_losses
    from paczero.tasks import TaskConfig, build_task
    from paczero.tasks.sst2 import synthetic_sst2

    loaded = load_model(ModelConfig(name="tiny-llama", track="full", device="cpu"), seed=0)
    task = build_task(TaskConfig(), loaded.tokenizer)
    examples = synthetic_sst2(8, 2, seed=1)["train"][:4] + builtin_canaries(3, public_stream(0))
    pool = task.encode(examples)
    record = {"rows": [4, 5, 6], "included": [True, False, True]}
    masked = CanaryMaskedTask(task, pool, record)
    rows = np.array([6, 0, 5, 2, 4])
    plain = pool_losses(loaded.model, task, pool, rows, 2)
    losses = pool_losses(loaded.model, masked, pool, rows, 2)
    assert losses[2] == 0.0 and torch.equal(losses[[0, 1, 3, 4]], plain[[0, 1, 3, 4]])
    dev = task.encode(examples)  # another set: never masked
    assert torch.equal(pool_losses(loaded.model, masked, dev, rows, 2), plain)


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
