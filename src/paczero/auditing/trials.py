"""`paczero audit --trials R`: the guarantee in expectation, from R runs with fresh secrets.

One run holds one draw of the secret (S*, the noise, the canaries' coins), so it can show
a leak only as large as one draw allows (docs/audit.md 3.2). The guarantees are statements
in expectation over that draw. Repeating a short run R times in-process, with the public
randomness fixed and the secret fresh each time, turns the attack's successes into
independent trials whose rate has an exact confidence interval (docs/audit.md 5).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from paczero.auditing.one_run import AuditReport, _check_options, _write_json, audit
from paczero.auditing.report import VERDICT_TEXT, plot_audit, verdict
from paczero.auditing.stats import (
    clopper_pearson,
    clopper_pearson_lower,
    hoeffding_interval,
    hoeffding_lower,
    logit_epsilon,
    snj_epsilon_lower_bound,
)
from paczero.config import load_config
from paczero.errors import UserError
from paczero.privacy.bounds import mi_to_epsilon
from paczero.privacy.channels import kl_bernoulli
from paczero.privacy.reports import epsilon_kind_word


def trial_config(target: str | Path, overrides=()):
    """The config repeated: a run directory's config.yaml, or a recipe / YAML file."""
    from paczero.auditing.attacks import check_auditable

    path = Path(target)
    source = path / "config.yaml" if (path / "config.yaml").is_file() else target
    cfg = load_config(str(source), overrides)
    check_auditable(cfg)
    return cfg


def audit_trials(
    target: str | Path,
    trials: int,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    seeds: list[int] | None = None,
    score: str = "loss-drop",
    guesses: int | None = None,
    confidence: float = 0.95,
    passes: str = "informative",
    json_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    require_bound: bool = False,
    progress: bool = False,
) -> AuditReport:
    """Train ``target``'s config ``trials`` times with fresh secrets (OS entropy, or
    ``seeds``), audit each run, and report the attacks' success rates against the bound.

    The trial runs live in a temporary directory that is removed afterwards.
    """
    from paczero.trainer import train

    _check_options(score, confidence)
    if trials < 1:
        raise UserError(f"--trials must be at least 1, got {trials}")
    if seeds is not None and len(seeds) != trials:
        raise UserError(f"{len(seeds)} secret seeds for {trials} trials")
    base = trial_config(target, overrides).model_dump(mode="json")
    reports = []
    with tempfile.TemporaryDirectory(prefix="paczero-audit-") as tmp:
        for i in range(trials):
            data = {**base, "seed": {**base["seed"], "secret": None if seeds is None else seeds[i]}}
            out = Path(tmp) / f"trial-{i:04d}"
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="seed.secret is set")
                train(data, out=out, progress=False)
            report = audit(out, score=score, guesses=guesses, passes=passes, write=False)
            reports.append(report.data)
            shutil.rmtree(out)
            if progress:
                print(f"trial {i + 1}/{trials}: {reports[-1]['summary']}", flush=True)
    data = aggregate(reports, confidence)
    data["target"] = str(target)
    if require_bound and data["claim"] is None:
        raise UserError(f"{data['mechanism']} claims no privacy bound to check")
    if json_path is not None:
        data["json"] = str(json_path)
    if plot_path is not None:
        data["plot"] = str(plot_audit(data, Path(plot_path)))
    if json_path is not None:
        _write_json(Path(json_path), data, private=False)
    return AuditReport(data)


def aggregate(reports: list[dict[str, Any]], confidence: float) -> dict[str, Any]:
    """Success rates over the trials, their intervals, and the lower bounds they imply."""
    first = reports[0]
    claim = first["claim"]
    trials = len(reports)
    alpha = 1.0 - confidence
    names = [a["name"] for a in first["attacks"]]
    subsets = first["subsets"] is not None
    tests = len(names) * (2 if subsets else 1)  # Bonferroni over every bound tried
    attacks = []
    for index, name in enumerate(names):
        per_trial = [r["attacks"][index] for r in reports]
        if subsets:
            attack = _subset_rates(per_trial, claim, alpha, alpha / tests)
        else:
            attack = _canary_rates(per_trial, claim, alpha, alpha / tests)
        attack["name"] = name
        attack["score"] = per_trial[0].get("score")
        attack["curve"] = _pooled_curve(per_trial)
        attacks.append(attack)
    lower = max(a["epsilon_lower_bound"] for a in attacks)
    data = {
        "trials": trials,
        "mechanism": first["mechanism"],
        "pool": first["pool"],
        "steps": first["steps"],
        "subsets": first["subsets"],
        "canaries": first["canaries"],
        "confidence": confidence,
        "claim": claim,
        "attacks": attacks,
        "epsilon_lower_bound": lower,
        "verdict": verdict(claim, lower),
        "checks_ok": all(all(i["ok"] for i in r["checks"].values()) for r in reports),
        "per_trial": [
            {
                "epsilon_lower_bound": r["epsilon_lower_bound"],
                "verdict": r["verdict"],
                "truth": r["truth"],
            }
            for r in reports
        ],
    }
    data["summary"] = _trials_words(data)
    return data


def _subset_rates(per_trial, claim, alpha, level) -> dict[str, Any]:
    """Naming S* (a Bernoulli per trial) and membership accuracy (a mean in [0, 1] per
    trial, a coin on undecided examples), each against what I <= B allows."""
    trials = len(per_trial)
    m = per_trial[0]["candidates"]
    named = sum(bool(a["identified"]) for a in per_trial)
    accuracy = float(np.mean([a["coin_accuracy"] for a in per_trial]))
    low = clopper_pearson_lower(named, trials, level)
    mi_named = kl_bernoulli(low, 1.0 / m) if low > 1.0 / m else 0.0
    low_acc = hoeffding_lower(accuracy, trials, level)
    mi_acc = kl_bernoulli(low_acc, 0.5) if low_acc > 0.5 else 0.0
    mi = max(mi_named, mi_acc)  # I(S*; O) >= this, at the split confidence
    # At I >= ln 2 the membership bound reaches 1: the matched epsilon is unbounded.
    eps = mi_to_epsilon(mi) if mi < math.log(2.0) else math.inf
    return {
        "identified": named,
        "identify_rate": named / trials,
        "identify_interval": list(clopper_pearson(named, trials, alpha)),
        "identify_bound": claim["identify_bound"] if claim else None,
        "chance": 1.0 / m,
        "accuracy": accuracy,
        "accuracy_interval": list(hoeffding_interval(accuracy, trials, alpha)),
        "accuracy_bound": claim["posterior_bound"] if claim else None,
        "mi_lower_bound": mi,
        "epsilon_lower_bound": max(eps, logit_epsilon(low_acc)),
        "bound_method": "Clopper-Pearson on naming S*, Hoeffding on the mean accuracy "
        f"(each at {1 - level:.4g}: Bonferroni)",
    }


def _canary_rates(per_trial, claim, alpha, level) -> dict[str, Any]:
    """The trials' canaries together: R * m independent coins, R * r guesses per count r;
    the one-run theorem applies to the union (each coin affects only its own run)."""
    m = sum(a["canaries"] for a in per_trial)
    delta = claim["delta"] if claim else 0.0
    counts = [p["guesses"] for p in per_trial[0]["tried"]]
    tried = []
    for j in range(len(counts)):
        guesses = sum(a["tried"][j]["guesses"] for a in per_trial)
        correct = sum(a["tried"][j]["correct"] for a in per_trial)
        eps = snj_epsilon_lower_bound(m, guesses, correct, delta, level / len(counts))
        tried.append({"guesses": guesses, "correct": correct, "epsilon_lower_bound": eps})
    best = max(tried, key=lambda p: (p["epsilon_lower_bound"], p["guesses"]))
    accuracy = best["correct"] / best["guesses"]
    return {
        "guesses": best["guesses"],
        "correct": best["correct"],
        "accuracy": accuracy,
        "accuracy_interval": list(clopper_pearson(best["correct"], best["guesses"], alpha)),
        "accuracy_bound": claim["posterior_bound"] if claim else None,
        "epsilon_lower_bound": best["epsilon_lower_bound"],
        "tried": tried,
        "bound_method": "one-run auditing theorem over all trials' canaries",
    }


def _pooled_curve(per_trial) -> list[dict[str, int]]:
    """Correct guesses summed over the trials at each count of guesses (for the plot)."""
    length = min(len(a["curve"]) for a in per_trial)
    return [
        {
            "guesses": sum(a["curve"][i]["guesses"] for a in per_trial),
            "correct": sum(a["curve"][i]["correct"] for a in per_trial),
        }
        for i in range(length)
    ]


def _trials_words(data: dict[str, Any]) -> str:
    conf = f"{100 * data['confidence']:g}%"
    lb = data["epsilon_lower_bound"]
    mi = max((a.get("mi_lower_bound", 0.0) for a in data["attacks"]), default=0.0)
    claim = data["claim"]
    tail = f"empirical epsilon >= {lb:.3g}"
    if mi > 0.0:
        tail += f", I(S*; output) >= {mi:.3g} nats"
    tail += f" at {conf} confidence"
    if claim is not None:
        tail += f"; {epsilon_kind_word(claim)} epsilon {claim['epsilon']:.3g}"
    return f"over {data['trials']} runs, {VERDICT_TEXT[data['verdict']]} ({tail})"
