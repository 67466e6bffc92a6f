"""The attacker's side of the audit: what it knows of the run, and its attacks.

``open_view`` reads what the attacker knows (config without the secret seed, the public
release log, the public stream, the pool, the candidate subsets, the canary texts) and,
apart, the truth the attacks are scored with (``private/``). ``paczero.auditing.rebuild``
replays the run from it; the attacks here are then plain functions of numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paczero.auditing.stats import (
    clopper_pearson,
    rank_epsilon_lower_bound,
    rank_mi_lower_bound,
    snj_epsilon_lower_bound,
)
from paczero.config import RunConfig, load_config
from paczero.errors import UserError
from paczero.privacy.randomness import RandomStream, public_stream
from paczero.records import ReleaseRecord
from paczero.runs import RunDir, open_run
from paczero.tasks.canaries import CANARY_FILE, canary_examples, canary_inclusion, digest

TOL = 1e-9  # agreement of recomputed and logged real values (bit-identical in practice)


# ---------------------------------------------------------------- what the attacker knows


@dataclass
class RunView:
    """A run as the attacker sees it, plus the truth kept apart for scoring."""

    run: RunDir
    cfg: RunConfig
    records: list[ReleaseRecord]
    result: dict[str, Any] | None
    uses_subsets: bool
    private: bool  # does the mechanism claim a guarantee?
    canaries: list[dict[str, Any]]  # public canary examples (appended to the pool)
    pool_size: int = 0  # set by ``rebuild`` (real pool + canaries)
    membership: np.ndarray | None = None  # N x M, from the public stream
    # the truth, from private/ only
    secret_index: int | None = None
    canaries_included: np.ndarray | None = None
    truth_checks: dict[str, Any] = field(default_factory=dict)

    @property
    def mechanism(self) -> str:
        return self.cfg.mechanism.name

    @property
    def subsets(self) -> int | None:
        return self.cfg.mechanism.subsets if self.uses_subsets else None


def check_auditable(cfg) -> None:
    """The attacks score rows: a run whose privacy unit is a group of rows is refused."""
    if cfg.data.group_field:
        raise UserError(
            f"paczero audit scores one row at a time; this run's privacy unit is every row "
            f"sharing data.group_field '{cfg.data.group_field}' (user-level), which it does "
            "not audit yet"
        )


def open_view(path: str | Path) -> RunView:
    """The run's public side and its private truth; bad input raises UserError."""
    run = open_run(path)
    private = run.private_dir
    if not private.is_dir():
        raise UserError(
            f"{run.path} has no private/ folder: the audit scores its attacks with the secret "
            "kept there; audit the run directory where the run was trained"
        )
    secret_file = private / "secret.json"
    if not secret_file.exists():
        raise UserError(f"{secret_file} is missing: the audit cannot know the truth to score")
    info = json.loads(secret_file.read_text())
    if info.get("run_id") != run.run_id():
        raise UserError(
            f"{run.path}/private/ belongs to a different run (config.yaml changed or private/ "
            "was copied from elsewhere); refusing to audit"
        )
    cfg = load_config(str(run.config_path))
    check_auditable(cfg)
    cls = cfg.mechanism_type
    records = run.releases(kinds=cls.kinds)
    if not records:
        raise UserError(f"{run.path}/releases.jsonl is empty: the run took no step to audit")
    if [r.step for r in records] != list(range(len(records))):
        raise UserError(f"{run.path}/releases.jsonl is not a gap-free step sequence")
    result_path = run.path / "result.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else None
    public = public_stream(cfg.seed.public)
    view = RunView(
        run=run,
        cfg=cfg,
        records=records,
        result=result,
        uses_subsets=cls.uses_subsets,
        private=cls.private,
        canaries=canary_examples(cfg, public),
    )
    if view.uses_subsets:
        state = json.loads((private / "mechanism.json").read_text())
        view.secret_index = int(state["secret_index"])
    elif view.canaries:
        view.canaries_included = _canary_truth(run, cfg, view.canaries, info)
    else:
        raise UserError(
            f"{run.path} ({cfg.mechanism.name}) randomised no membership to audit: train with "
            "--set audit.canaries=64 (DP, MeZO), or use a PACZero mechanism"
        )
    return view


def _canary_truth(run: RunDir, cfg, canaries, secret_info: dict[str, Any]) -> np.ndarray:
    path = run.private_dir / CANARY_FILE
    if not path.exists():
        raise UserError(f"{path} is missing: the canaries' inclusion is unknown")
    record = json.loads(path.read_text())
    if record.get("digest") != digest(canaries) or record.get("count") != len(canaries):
        raise UserError(f"{path} does not describe this run's canaries (config changed?)")
    included = np.asarray(record["included"], dtype=bool)
    # the record must be what the secret stream draws: a cross-check of the hook
    again = canary_inclusion(len(canaries), RandomStream(int(secret_info["root"]), "secret"))
    if not np.array_equal(again, included):
        raise UserError(f"{path} disagrees with the run's secret stream; refusing to audit")
    return included


# ---------------------------------------------------------------- the attacks


def guess_curve(scores: np.ndarray, truth: np.ndarray, grid: list[int]) -> list[dict[str, int]]:
    """Balanced guesses: the r/2 highest scores "in", the r/2 lowest "out"; correct counts."""
    order = np.argsort(-scores, kind="stable")
    out = []
    for r in grid:
        k_in, k_out = (r + 1) // 2, r // 2
        chosen_in, chosen_out = order[:k_in], order[len(order) - k_out :] if k_out else order[:0]
        correct = int(truth[chosen_in].sum()) + int((~truth[chosen_out]).sum())
        out.append({"guesses": int(r), "correct": correct})
    return out


def confident_curve(p_in: np.ndarray, truth: np.ndarray, grid: list[int]) -> list[dict[str, int]]:
    """Posterior guesses: the r examples whose membership probability is furthest from 1/2."""
    decided = np.flatnonzero(np.abs(p_in - 0.5) > 1e-12)
    order = decided[np.argsort(-np.abs(p_in[decided] - 0.5), kind="stable")]
    out = []
    for r in grid:
        if r > len(order):
            break
        chosen = order[:r]
        correct = int(np.count_nonzero((p_in[chosen] > 0.5) == truth[chosen]))
        out.append({"guesses": int(r), "correct": correct})
    return out


def curve_grid(n: int) -> list[int]:
    """Every even count of guesses up to n (and n): the plot's x axis."""
    grid = list(range(2, n + 1, 2))
    if not grid or grid[-1] != n:
        grid.append(n)
    return grid


def bound_grid(m: int, alpha: float) -> list[int]:
    """Counts of guesses tried for the one-run bound: m, m/2, m/4, m/8, keeping only those
    that could reject even epsilon = 0 at their share of alpha (r right of r has probability
    2^-r by chance, so a small r only spends confidence)."""
    grid = sorted({r for r in (m // 8, m // 4, m // 2, m) if r >= 1})
    while len(grid) > 1 and 0.5 ** grid[0] >= alpha / len(grid):
        grid.pop(0)
    return grid


def _interval(correct: int, guesses: int, alpha: float) -> list[float]:
    return list(clopper_pearson(correct, guesses, alpha)) if guesses else [0.0, 1.0]


def rank_of(scores: np.ndarray, index: int) -> int:
    """1 + the candidates scored above S*, counting ties against the attacker."""
    return int(np.count_nonzero(scores >= scores[index]))


def transcript_attack(view: RunView, log_post: np.ndarray, alpha: float) -> dict[str, Any]:
    """The Bayes attacker: its posterior over S*, the MAP guess, membership probabilities."""
    a = view.membership
    truth = a[:, view.secret_index]
    post = np.exp(log_post)
    p_in = a.astype(np.float64) @ post
    m = len(post)
    rank = rank_of(log_post, view.secret_index)
    guessed = np.abs(p_in - 0.5) > 1e-12
    correct = int(np.count_nonzero((p_in[guessed] > 0.5) == truth[guessed]))
    r = int(np.count_nonzero(guessed))
    coin = (correct + 0.5 * (len(truth) - r)) / len(truth)
    p_value = rank / m
    return {
        "name": "transcript",
        "what": "the attacker's posterior over the M candidates, rebuilt from the public "
        "release log and recomputed subset signs",
        "candidates": m,
        "map_probability": float(post.max()),
        "posterior_entropy": float(-np.sum(post[post > 0] * np.log(post[post > 0]))),
        "identified": bool(rank == 1 and np.count_nonzero(log_post == log_post.max()) == 1),
        "rank": rank,
        "p_value": p_value,
        "guesses": r,
        "correct": correct,
        "accuracy": correct / r if r else None,
        "interval": _interval(correct, r, alpha),
        "coin_accuracy": coin,  # a coin on undecided examples: comparable with x*(B)
        "expected_accuracy": float(np.mean(np.maximum(p_in, 1 - p_in))),
        "mi_lower_bound": rank_mi_lower_bound(p_value, alpha),
        "epsilon_lower_bound": rank_epsilon_lower_bound(p_value, alpha),
        "bound_method": "rank of S* among the M candidates (any dependence; docs/audit.md 3.2)",
        "curve": confident_curve(p_in, truth, curve_grid(len(truth))),
    }


def selection_attack(view: RunView, selection, alpha: float) -> dict[str, Any]:
    """An attacker that reads the selection stage: each candidate subset scored by how
    strongly its mean losses back what every challenge released (the margin of the
    released candidate over the other), turned into a distribution over S*. At I = 0 the
    decisions are the same whichever subset is S*, so S*'s rank stays uniform."""
    losses = {k: np.asarray(v) for k, v in selection.private["subset_mean_loss"].items()}
    score = np.zeros(view.subsets or 0)
    for record in selection.records:
        other = (
            record["challenger"]
            if record["released"] == record["incumbent"]
            else (record["incumbent"])
        )
        score += losses[other] - losses[record["released"]]
    spread = float(score.std()) or 1.0
    log_post = score / spread - np.logaddexp.reduce(score / spread)
    out = transcript_attack(view, log_post, alpha)
    out.update(
        name="selection",
        what="each candidate subset scored by how strongly its losses back every released "
        "selection decision (the margin of the released candidate)",
    )
    return out


def model_attack_subsets(view: RunView, scores: np.ndarray, score: str, alpha: float):
    """Membership in S* from the model alone: balanced guesses, and S* as the candidate
    whose members the final model prefers most (the centred scores summed)."""
    a = view.membership
    truth = a[:, view.secret_index]
    centred = scores - scores.mean()
    totals = centred @ a.astype(np.float64)
    m = a.shape[1]
    rank = rank_of(totals, view.secret_index)
    curve = guess_curve(scores, truth, curve_grid(len(truth)))
    whole = curve[-1]
    p_value = rank / m
    return {
        "name": "model",
        "score": score,
        "what": _SCORE_TEXT[score],
        "candidates": m,
        "identified": bool(rank == 1 and np.count_nonzero(totals == totals.max()) == 1),
        "rank": rank,
        "p_value": p_value,
        "guesses": whole["guesses"],
        "correct": whole["correct"],
        "accuracy": whole["correct"] / whole["guesses"],
        "interval": _interval(whole["correct"], whole["guesses"], alpha),
        "coin_accuracy": whole["correct"] / whole["guesses"],
        "mi_lower_bound": rank_mi_lower_bound(p_value, alpha),
        "epsilon_lower_bound": rank_epsilon_lower_bound(p_value, alpha),
        "bound_method": "rank of S* among the M candidates (any dependence; docs/audit.md 3.2)",
        "curve": curve,
        "scores": [float(x) for x in scores],
    }


def model_attack_canaries(
    view: RunView,
    scores: np.ndarray,
    score: str,
    delta: float,
    alpha: float,
    guesses: int | None = None,
) -> dict[str, Any]:
    """Canary membership from the model alone, bounded with the one-run theorem."""
    truth = view.canaries_included
    m = len(truth)
    if guesses is not None and not 1 <= guesses <= m:
        raise UserError(f"--guesses must be between 1 and the {m} canaries, got {guesses}")
    grid = [guesses] if guesses is not None else bound_grid(m, alpha)
    level = alpha / len(grid)  # Bonferroni over the counts tried
    tried = []
    for point in guess_curve(scores, truth, grid):
        eps = snj_epsilon_lower_bound(m, point["guesses"], point["correct"], delta, level)
        tried.append({**point, "epsilon_lower_bound": eps})
    best = max(tried, key=lambda p: (p["epsilon_lower_bound"], p["guesses"]))
    return {
        "name": "model",
        "score": score,
        "what": _SCORE_TEXT[score] + ", on the canaries",
        "canaries": m,
        "included": int(truth.sum()),
        "guesses": best["guesses"],
        "correct": best["correct"],
        "accuracy": best["correct"] / best["guesses"],
        "interval": _interval(best["correct"], best["guesses"], alpha),
        "epsilon_lower_bound": best["epsilon_lower_bound"],
        "bound_method": (
            f"one-run auditing theorem (Steinke, Nasr, Jagielski 2023) with delta {delta:g}, "
            f"counts of guesses {grid} (Bonferroni)"
        ),
        "tried": tried,
        "curve": guess_curve(scores, truth, curve_grid(m)),
        "scores": [float(x) for x in scores],
    }


_SCORE_TEXT = {
    "loss-drop": "how much the final model lowers each example's loss from the base model",
    "alignment": "each example's per-step derivatives aligned with the released updates "
    "(sum of lr * coeff * g_i / K)",
}
