"""`paczero audit` of one run: the attacks on its public side, scored with its private
truth and held against its guarantee (the package's doc says which attacks; docs/audit.md)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paczero.auditing.attacks import (
    RunView,
    model_attack_canaries,
    model_attack_subsets,
    open_view,
    selection_attack,
    transcript_attack,
)
from paczero.auditing.rebuild import rebuild
from paczero.auditing.report import (
    format_private_report,
    format_report,
    format_trials,
    plain_words,
    plot_audit,
    verdict,
)
from paczero.errors import UserError
from paczero.runs import PRIVATE_FILE_MODE

SCORES = ("loss-drop", "alignment")
PASSES = ("all", "informative")


@dataclass
class AuditReport:
    """The audit's numbers (``data``, as in the JSON) and its table (``str``)."""

    data: dict[str, Any]

    @property
    def epsilon_lower_bound(self) -> float:
        return self.data["epsilon_lower_bound"]

    @property
    def verdict(self) -> str:
        return self.data["verdict"]

    def __str__(self) -> str:
        """What may be published (``format_report``); ``private_text`` has the whole table."""
        if "trials" in self.data:
            return format_trials(self.data)
        return format_report(self.data)

    def private_text(self) -> str:
        """The whole table, with ranks and counts that name S*: for private/ only."""
        if "trials" in self.data:
            return str(self)
        return format_private_report(self.data)


def claim_of(view: RunView) -> dict[str, Any] | None:
    """The run's guarantee as the audit holds the attack against it (``PrivacyReport.claim``;
    None for a run without one): result.json's report, or for an unfinished run the one
    its mechanism proves for the planned run with the spend logged so far."""
    from paczero.report import run_privacy

    return run_privacy(view.run.path, view.cfg, view.records)[1].claim()


def _check_options(score: str, confidence: float) -> None:
    if score not in SCORES:
        raise UserError(f"unknown --score '{score}'; use one of {', '.join(SCORES)}")
    if not 0.5 <= confidence < 1.0:
        raise UserError(f"--confidence must be in [0.5, 1), got {confidence}")


def _attacks(view: RunView, rebuilt, score: str, claim, confidence: float, guesses):
    """The attacks on the rebuilt run, each at its share of ``1 - confidence`` (Bonferroni):
    with candidate subsets the transcript, the model (and the prompt selection's) attacks;
    otherwise the canary attack. Returns them and their alpha."""
    scores = (
        rebuilt.base_losses - rebuilt.final_losses if score == "loss-drop" else rebuilt.alignment
    )
    transcript = view.uses_subsets
    n_attacks = (2 + (rebuilt.selection is not None)) if transcript else 1
    alpha = (1.0 - confidence) / n_attacks  # Bonferroni over the attacks
    attacks = []
    if transcript:
        attacks.append(transcript_attack(view, rebuilt.log_posterior, alpha))
        attacks.append(model_attack_subsets(view, scores, score, alpha))
        if rebuilt.selection is not None:  # the prompt chosen before training (I = 0)
            attacks.append(selection_attack(view, rebuilt.selection, alpha))
    else:
        delta = claim["delta"] if claim is not None else 0.0
        attacks.append(model_attack_canaries(view, scores, score, delta, alpha, guesses))
    return attacks, alpha


def audit(
    run_dir: str | Path,
    *,
    score: str = "loss-drop",
    guesses: int | None = None,
    confidence: float = 0.95,
    passes: str = "all",
    json_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    require_bound: bool = False,
    write: bool = True,
) -> AuditReport:
    """Attack one finished (or stopped) run and hold the result against its guarantee.

    ``passes``: ``all`` redoes the two forward passes of every step (every logged sign
    count is checked), ``informative`` only where a release depends on S* (cheaper, the
    same posterior). ``write`` saves the JSON and the plot, by default as ``private/audit.json`` and
    ``private/audit.png``: they say whether the guesses were right, so they reveal the
    secret and stay private. ``require_bound`` refuses a run that claims no bound.
    """
    _check_options(score, confidence)
    view = open_view(run_dir)
    claim = claim_of(view)
    if require_bound and claim is None:
        raise UserError(
            f"{view.run.path} ran {view.mechanism}, which claims no privacy bound to check"
        )
    if guesses is not None and view.uses_subsets:
        raise UserError(
            "--guesses is for canary audits; with candidate subsets the bound comes from "
            "the rank of S* (docs/audit.md 3.2)"
        )
    transcript = view.uses_subsets
    if passes not in PASSES:
        raise UserError(f"unknown --passes '{passes}'; use one of {', '.join(PASSES)}")
    rebuilt = rebuild(view, transcript=transcript, alignment=score == "alignment", passes=passes)
    attacks, alpha = _attacks(view, rebuilt, score, claim, confidence, guesses)
    lower = max(a["epsilon_lower_bound"] for a in attacks)
    data: dict[str, Any] = {
        "run": str(view.run.path),
        "mechanism": view.mechanism,
        "pool": view.pool_size,
        "steps": rebuilt.steps,
        "subsets": view.subsets,
        "construction": view.cfg.mechanism.construction if view.uses_subsets else None,
        "canaries": len(view.canaries) or None,
        "score": score,
        "passes": passes,
        "confidence": confidence,
        "claim": claim,
        "attacks": attacks,
        "epsilon_lower_bound": lower,
        "verdict": verdict(claim, lower),
        "checks": rebuilt.checks,
        "truth": (
            {"secret_index": view.secret_index}
            if view.uses_subsets
            else {"canaries_included": int(view.canaries_included.sum())}
        ),
    }
    data["summary"] = plain_words(data)
    data["public_notes"], private_notes = _notes(view, claim, attacks, alpha)
    data["notes"] = data["public_notes"] + private_notes
    if not all(item["ok"] for item in rebuilt.checks.values()):
        data["summary"] += (
            "; the attacker's recomputation disagrees with the release log (see the checks)"
        )
    if write:
        private = view.run.private_dir
        data["json"] = str(json_path or private / "audit.json")
        data["plot"] = str(plot_audit(data, Path(plot_path or private / "audit.png")))
        os.chmod(data["plot"], PRIVATE_FILE_MODE)  # it names S*, wherever it is written
        _write_json(Path(data["json"]), data)
    return AuditReport(data)


def _notes(
    view: RunView, claim, attacks: list[dict[str, Any]], alpha: float
) -> tuple[list[str], list[str]]:
    """What the verdict line alone would leave a reader to misread: public notes (from the
    config alone) and private ones (from the guesses' success)."""
    public, notes = [], []
    if view.uses_subsets:
        m = view.subsets
        if 1.0 / m >= alpha:
            public.append(
                f"one run with M = {m} candidates cannot show a leak at this confidence (naming "
                f"S* by luck has probability 1/{m}); --trials checks the guarantee in expectation"
            )
        first = attacks[0]
        if claim is not None and first["guesses"]:
            notes.append(
                f"the transcript attack's membership guesses were {first['correct']}/"
                f"{first['guesses']} right; the per-example bound {claim['posterior_bound']:.4f} "
                "holds in expectation over runs, and one run's guesses are not independent"
            )
    else:
        attack = attacks[0]
        if attack["epsilon_lower_bound"] == 0.0 and attack["interval"][0] > 0.5:
            notes.append(
                "the accuracy interval excludes 0.5, but not at the confidence left for each of "
                f"the {len(attack['tried'])} counts of guesses tried (--guesses fixes one count)"
            )
    return public, notes


def _write_json(path: Path, data: dict[str, Any], private: bool = True) -> None:
    """One run's report holds ``truth`` (S* or the included canaries): owner-only, under
    ``private/`` or at a ``--json`` path of the user's. Trials' reports are of throw-away
    runs (``private=False``)."""
    from paczero.runs import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, _finite(data), PRIVATE_FILE_MODE if private else None)


def _finite(obj: Any) -> Any:
    """JSON without NaN/inf: an infinite epsilon (a budget at or above ln 2) reads "inf"."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


__all__ = ["AuditReport", "audit", "claim_of"]
