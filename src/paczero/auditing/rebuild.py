"""The audit's replay: the run rebuilt from its public inputs (``attacks.RunView``).

``rebuild`` replays the run from the base model exactly as the optimizer ran it, redoing the
two forward passes of every step where an attack needs them, so the attacker recomputes all
M subset signs itself (docs/audit.md 2), and checks each recomputation against the public
log (``_Checks``); ``_Transcript`` turns them into the attacker's posterior over S*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from paczero import selection as selection_stage
from paczero.auditing.attacks import TOL, RunView
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


@dataclass
class _Passes:
    """Step t's forward passes where an attack needs them (else the step is only replayed):
    the ``redo`` of ``paczero.replay.replay`` in ``rebuild``."""

    model: Any
    task: Any
    pool: Any
    n: int
    micro: int
    rows_audited: np.ndarray
    estimator: Any
    public: RandomStream
    checks: _Checks
    k_total: int
    clip: float | None
    batch: int | None
    passes: str
    tracker: _Transcript | None
    align: np.ndarray | None
    extra: bool  # the audited rows need their own passes (unless they are the step's)

    def __call__(self, t: int, record: ReleaseRecord, seeds: list[int], amounts: list[float]):
        from paczero.engine.optim import public_minibatch
        from paczero.session import pool_losses

        self.checks.count(
            "seeds", seeds == [self.public.seed("direction", t, k) for k in range(self.k_total)]
        )
        informative = self.passes == "all" or not INFORMATIVE.isdisjoint(record.kinds)
        if self.align is None and (self.tracker is None or not informative):
            return False
        step_rows = (
            public_minibatch(self.public, t, self.n, self.batch)
            if self.tracker is not None
            else None
        )
        outputs: list[torch.Tensor] = []
        same = step_rows is not None and np.array_equal(step_rows, self.rows_audited)

        def losses() -> torch.Tensor:
            parts = []
            if step_rows is not None:
                parts.append(pool_losses(self.model, self.task, self.pool, step_rows, self.micro))
            if self.extra and not same:
                parts.append(
                    pool_losses(self.model, self.task, self.pool, self.rows_audited, self.micro)
                )
            out = torch.cat(parts)
            outputs.append(out)
            return out

        estimates = [
            self.estimator.estimate(seed, losses, defer_restore=k == self.k_total - 1)
            for k, seed in enumerate(seeds)
        ]
        if step_rows is not None:
            m = len(step_rows)
            if record.loss is not None:  # the optimizer's loss estimate, recomputed the same way
                total = 0.0
                for k in range(self.k_total):
                    plus, minus = (outputs[2 * k + j][:m].to(torch.float64) for j in (0, 1))
                    total += float(((plus + minus) / 2).mean())
                self.checks.close("loss", total / self.k_total, record.loss)
            self.tracker.step(
                t, record, [e.derivatives[:m] for e in estimates], step_rows, self.clip
            )
        if self.align is not None:
            for k, e in enumerate(estimates):
                g = e.derivatives if same else e.derivatives[-len(self.rows_audited) :]
                if self.clip is not None:
                    g = np.clip(g, -self.clip, self.clip)
                self.align[:] += amounts[k] * g  # first-order loss decrease of each row
        return True  # the loop applies the step's update


def rebuild(view: RunView, *, transcript: bool, alignment: bool, passes: str = "all") -> Rebuilt:
    """Replay the run from theta_0 with the logged seeds, learning rates and coefficients.

    Every step redoes the optimizer's float operations in its order (bit-identical theta);
    where an attack needs them, it also redoes the two forward passes over the step's public
    rows (``transcript``: all M subset signs) and over the audited rows (``alignment``).
    ``passes="informative"`` redoes the passes only at steps with an informative release
    kind (the posterior is the same; the log's other steps go unchecked).
    """
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

    redo = _Passes(
        model, task, pool, n, micro, rows_audited, estimator, public, checks, k_total, clip,
        batch, passes, tracker, align, extra,
    )  # fmt: skip
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
