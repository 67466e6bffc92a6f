"""The attacker's side of the audit: rebuild the run from its public inputs, then attack.

``open_view`` reads what the attacker knows (config without the secret seed, the public
release log, the public stream, the pool, the candidate subsets, the canary texts) and,
apart, the truth the attacks are scored with (``private/``). ``rebuild`` replays the run
from the base model exactly as the optimizer ran it, redoing the two forward passes of
every step where an attack needs them, so the attacker recomputes all M subset signs
itself (docs/audit.md 2). The attacks are then plain functions of numbers.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paczero import selection as selection_stage
from paczero.auditing.stats import (
    clopper_pearson,
    rank_epsilon_lower_bound,
    rank_mi_lower_bound,
    snj_epsilon_lower_bound,
)
from paczero.config import RunConfig, load_config
from paczero.distributed import SOLO
from paczero.errors import UserError
from paczero.mechanisms.subsets import (
    membership_digest,
    membership_matrix,
    prepare_derivatives,
    subset_means,
    subset_signs,
)
from paczero.privacy.posterior import (
    bsc_update,
    exact_update,
    gaussian_update,
    log_normalize,
    sign_log_masses,
    uniform_log_posterior,
)
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


# ---------------------------------------------------------------- the replay


@dataclass
class Rebuilt:
    """What the replay yields: losses, derivative alignments, the posterior, the checks."""

    rows: np.ndarray  # the pool rows the model attack scores
    base_losses: np.ndarray
    final_losses: np.ndarray
    alignment: np.ndarray | None
    log_posterior: np.ndarray | None
    checks: dict[str, Any]
    steps: int
    selection: Any = None  # the selection stage redone (paczero.selection), if the run had one


def audit_rows(view: RunView, pool_size: int) -> np.ndarray:
    """The rows whose membership is random: the whole pool (PACZero) or the canaries."""
    if view.uses_subsets:
        return np.arange(pool_size)
    n = pool_size - len(view.canaries)
    return np.arange(n, pool_size)


# Release kinds whose public fields depend on S*: only these move the attacker's posterior.
INFORMATIVE = frozenset({"noiseless", "noisy", "nonprivate"})


def rebuild(view: RunView, *, transcript: bool, alignment: bool, passes: str = "all") -> Rebuilt:
    """Replay the run from theta_0 with the logged seeds, learning rates and coefficients.

    Every step redoes the optimizer's float operations in its order (bit-identical theta);
    where an attack needs them, it also redoes the two forward passes over the step's public
    rows (``transcript``: all M subset signs) and over the audited rows (``alignment``).
    ``passes="informative"`` redoes the passes only at steps with an informative release
    kind (the posterior is the same; the log's other steps go unchecked).
    """
    from paczero.engine.optim import public_minibatch
    from paczero.models import load_model
    from paczero.replay import estimator_for, replay
    from paczero.session import build_task_for, load_named, pool_losses
    from paczero.tasks import load_splits

    cfg, records = view.cfg, view.records
    if not cfg.mechanism_type.replayable:
        raise UserError(
            f"{view.run.path} is a first-order run ({cfg.mechanism.name}): the audit replays "
            "the release log, which holds no gradients; it cannot audit this run"
        )
    public = public_stream(cfg.seed.public)
    splits = load_splits(cfg.task, cfg.data)
    loaded = load_model(cfg.model, seed=public.seed("model-init"))
    model = loaded.model
    chosen = selection_stage.chosen_task(cfg.task, view.run.path)  # the prompt it trained with
    task = build_task_for(cfg.model_copy(update={"task": chosen}), loaded)
    checks = _Checks()
    selection = redo_selection(view, splits, loaded, public, checks) if transcript else None
    pool = task.encode([*splits.pool, *view.canaries])
    n = len(pool)
    view.pool_size = n
    rows_audited = audit_rows(view, n)
    micro = cfg.zo.micro_batch
    k_total = cfg.zo.directions
    clip = cfg.mechanism.derivative_clip()  # MeZO clips none
    estimator = estimator_for(cfg, loaded)
    base = pool_losses(model, task, pool, rows_audited, micro).double().numpy()

    tracker = _Transcript(view, public, n, checks) if transcript else None
    batch = None if cfg.train.batch_size == "full" else cfg.train.batch_size
    align = np.zeros(len(rows_audited)) if alignment else None
    extra = alignment  # the audited rows need their own passes (unless they are the step's)

    def redo(t: int, record: ReleaseRecord, seeds: list[int], amounts: list[float]) -> bool:
        """Step ``t``'s forward passes where an attack needs them (else it is replayed)."""
        checks.count("seeds", seeds == [public.seed("direction", t, k) for k in range(k_total)])
        informative = passes == "all" or not INFORMATIVE.isdisjoint(record.kinds)
        if align is None and (tracker is None or not informative):
            return False
        step_rows = public_minibatch(public, t, n, batch) if tracker is not None else None
        outputs: list[torch.Tensor] = []
        same = step_rows is not None and np.array_equal(step_rows, rows_audited)

        def losses() -> torch.Tensor:
            parts = []
            if step_rows is not None:
                parts.append(pool_losses(model, task, pool, step_rows, micro))
            if extra and not same:
                parts.append(pool_losses(model, task, pool, rows_audited, micro))
            out = torch.cat(parts)
            outputs.append(out)
            return out

        estimates = [
            estimator.estimate(seed, losses, defer_restore=k == k_total - 1)
            for k, seed in enumerate(seeds)
        ]
        if step_rows is not None:
            m = len(step_rows)
            if record.loss is not None:  # the optimizer's loss estimate, recomputed the same way
                total = 0.0
                for k in range(k_total):
                    plus, minus = (outputs[2 * k + j][:m].to(torch.float64) for j in (0, 1))
                    total += float(((plus + minus) / 2).mean())
                checks.close("loss", total / k_total, record.loss)
            tracker.step(t, record, [e.derivatives[:m] for e in estimates], step_rows, clip)
        if align is not None:
            for k, e in enumerate(estimates):
                g = e.derivatives if same else e.derivatives[-len(rows_audited) :]
                if clip is not None:
                    g = np.clip(g, -clip, clip)
                align[:] += amounts[k] * g  # first-order loss decrease of each row
        return True  # the loop applies the step's update

    replay(estimator, records, k_total, redo=redo)
    final_path = view.run.path / "checkpoints" / "final.safetensors"
    if final_path.exists():
        saved = view.run.load_tensors("final")
        same_model = all(torch.equal(p.detach().cpu(), saved[name]) for name, p in loaded.trainable)
        checks.count("final model", same_model)
        load_named(loaded.trainable, saved)  # the attack scores the model the run produced
    final = pool_losses(model, task, pool, rows_audited, micro).double().numpy()
    return Rebuilt(
        rows=rows_audited,
        base_losses=base,
        final_losses=final,
        alignment=align,
        log_posterior=tracker.log_post if tracker is not None else None,
        checks=checks.summary(),
        steps=len(records),
        selection=selection,
    )


def redo_selection(view: RunView, splits, loaded, public, checks: _Checks):
    """The selection stage again, from the base model and the pool the attacker knows: its
    decisions must be the logged ones (a check), its subset losses feed ``selection_attack``.
    None for a run that selected nothing (or not by unanimity)."""
    from paczero.session import select_prompt

    logged = selection_stage.read(view.run.path)
    if not logged or logged[-1]["rule"] != "unanimous":
        return None
    again = select_prompt(view.cfg, splits, loaded, public, SOLO)
    chain = ("prev", "sha")
    same = [{k: v for k, v in r.items() if k not in chain} for r in logged] == again.records
    checks.count("selection", same)
    return again


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


class _Checks:
    """Counts of agreements between the attacker's recomputation and the public log."""

    def __init__(self):
        self.items: dict[str, dict[str, Any]] = {}

    def count(self, name: str, ok: bool) -> None:
        item = self.items.setdefault(name, {"checked": 0, "agree": 0})
        item["checked"] += 1
        item["agree"] += int(bool(ok))

    def close(self, name: str, ours: float, logged: float) -> None:
        diff = abs(float(ours) - float(logged))
        item = self.items.setdefault(name, {"checked": 0, "agree": 0, "max_diff": 0.0})
        item["checked"] += 1
        item["agree"] += int(diff <= TOL * max(1.0, abs(float(logged))))
        item["max_diff"] = max(item["max_diff"], diff)

    def summary(self) -> dict[str, Any]:
        out = {name: dict(item) for name, item in self.items.items()}
        for item in out.values():
            item["ok"] = item["agree"] == item["checked"]
        return out


class _Transcript:
    """The attacker's posterior over the M candidates, rebuilt from recomputed signs and the
    public release fields alone (never from the mechanism's logged posterior, which is only
    compared with it)."""

    def __init__(self, view: RunView, public: RandomStream, n: int, checks: _Checks):
        cfg = view.cfg.mechanism
        a = membership_matrix(n, cfg.subsets, cfg.construction, public.generator("membership"))
        view.membership = a
        self.weights = a.astype(np.float64)
        self.n = n
        self.reveals = view.cfg.mechanism_type.reveals
        self.skip_all_zero = bool(cfg.skip_all_zero)
        self.log_post = uniform_log_posterior(cfg.subsets)
        self.checks = checks
        logged = view.records[0].state.get("membership_digest")
        checks.count("candidate subsets", logged is None or logged == membership_digest(a))

    def step(self, t, record, derivatives, rows, clip) -> None:
        weights = self.weights if len(rows) == self.n else self.weights[rows]
        for k, g in enumerate(derivatives):
            g = prepare_derivatives(g, rows, self.n, clip)
            means = subset_means(weights, g)
            signs = subset_signs(means)
            public = record.public[k]
            if "n_plus" in public:
                self.checks.count(
                    "subset signs", int(np.count_nonzero(signs > 0)) == public["n_plus"]
                )
            kind, coeff = record.kinds[k], float(record.coeffs[k])
            if self.skip_all_zero and not np.any(means):
                continue  # the mechanism's all-zero skip: no information
            self._update(kind, coeff, public, signs, means)
        logged = record.state.get("log_posterior")
        if logged is not None:
            theirs = np.array([-math.inf if v is None else v for v in logged], dtype=np.float64)
            diff = float(np.max(np.abs(np.exp(self.log_post) - np.exp(theirs))))
            self.checks.close("posterior", diff, 0.0)

    def _update(self, kind, coeff, public, signs, means) -> None:
        post = self.log_post
        if "q" in public:  # PACZero-MI publishes q = P(s_{S*} = +1) under its posterior
            self.checks.close("q", math.exp(sign_log_masses(post, signs)[0]), public["q"])
        y = 1 if coeff >= 0 else -1
        if kind == "noiseless":
            new = exact_update(post, signs, y)
        elif kind == "noisy" and "release_value" in public:
            new = gaussian_update(post, signs, float(public["release_value"]), public["sigma"])
        elif kind == "noisy":
            new = bsc_update(post, signs, y, float(public["flip_prob"]))
        elif kind == "free":
            alive = np.isfinite(post)
            self.checks.count("free releases", bool(np.all(signs[alive] == y)))
            return
        elif kind == "nonprivate" and self.reveals == "sign":
            new = exact_update(post, signs, y)
        elif kind == "nonprivate" and self.reveals == "mean":
            # The released coefficient is S*'s subset mean itself: the candidates whose
            # recomputed mean equals it stay.
            match = np.abs(means - coeff) <= TOL * max(1.0, abs(coeff))
            new = log_normalize(np.where(match, post, -math.inf))
        else:  # unanimous, coin, skip: functions of all M candidates, no information
            return
        if not np.any(np.isfinite(new)):  # nothing fits: the recomputation disagrees
            self.checks.count("consistent releases", False)
            return
        self.log_post = new


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
