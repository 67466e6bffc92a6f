"""The private selection stage: which public candidate prompt a run trains with, chosen on
the private pool before the first step, by the run's own mechanism (docs/selection.md).

The candidates (``task.candidates``, or a preset's own when no ``task.template`` is named)
are public. Each is scored by its per-example loss on the pool (the training objective, one
forward pass per example, no training). How the choice is released depends on the run's
mechanism:

- PACZero (ZPL, MI): pairwise challenges in the listed order. The challenger replaces the
  current choice only when every one of the M candidate subsets (the public membership
  matrix the training uses) has the lower mean loss with it; otherwise the current choice
  stays. Each decision is the same whichever subset is the secret one, so the stage
  releases nothing about the secret: I = 0, and an MI run's budget is untouched
  (docs/algorithms.md, "Selection at I = 0").
- A non-private mechanism: the candidate with the lowest mean loss over the whole pool.
- A DP mechanism: no DP selection is built yet. A preset's own candidates are not
  selected among: the first (its paper template) is used, a public choice; a run that
  lists ``task.candidates`` is refused at config time.

Every decision is a public record (what was compared, what was released) in the run's
``selection.jsonl``, hash-chained like the release log; the scores behind them go to
``private/selection.json``. Resume, export, evaluation and ``predict`` read the chosen
prompt from the public log (``chosen_task``), never recompute it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paczero.errors import UserError
from paczero.mechanisms.subsets import membership_matrix
from paczero.privacy.ledger import JsonlLog, read_chain

SELECTION_FILE = "selection.jsonl"  # public: one record per decision
PRIVATE_FILE = "selection.json"  # under private/: the scores behind the decisions
KIND = "selection"


@dataclass
class Selection:
    """The stage's outcome: the chosen candidate, its public records, its private scores."""

    chosen: str
    records: list[dict[str, Any]]
    private: dict[str, Any]

    def public(self) -> dict[str, Any]:
        """What result.json, the summary and the card say about the selection."""
        return summary(self.records)


def rule_of(mechanism_cls: type) -> str:
    """How a mechanism releases a choice: ``unanimous`` (PACZero), ``best`` (non-private)
    or ``pinned`` (DP: no DP selection yet, the first candidate)."""
    if not mechanism_cls.private:
        return "best"
    if mechanism_cls.uses_subsets:
        return "unanimous"
    return "pinned"


def check_selectable(task: Any, mechanism_cls: type) -> None:
    """ValueError for a run that lists task.candidates under a DP mechanism."""
    mechanism_name = mechanism_cls.name
    if task.candidates and rule_of(mechanism_cls) == "pinned":
        raise ValueError(
            f"task.candidates: {mechanism_name} has no private selection yet (a DP selection "
            "whose epsilon the accountant adds is not built); pin one prompt (drop "
            "task.candidates), or select with paczero-zpl"
        )


# ------------------------------------------------------------ the stage


def select(
    cfg: Any,
    choices: list[tuple[str, Any]],
    pool_rows: list[dict],
    score: Any,
    public: Any,
    pool_size: int,
    chat_ok: bool = True,
) -> Selection:
    """Run the stage: ``score(task_cfg, rows)`` gives the per-example (per-unit) losses of
    one candidate on the pool, in pool order; ``pool_size`` the mechanism's examples."""
    rule = rule_of(cfg.mechanism_type)
    names = [name for name, _ in choices]
    usable = [(n, t) for n, t in choices if chat_ok or not t.chat_template]
    skipped = [n for n in names if n not in dict(usable)]
    base = {"kind": KIND, "rule": rule, "candidates": names}
    if skipped:
        base["skipped"] = {n: "the model has no chat template" for n in skipped}
    if rule == "pinned" or len(usable) == 1:
        why = (
            f"{cfg.mechanism.name} has no private selection yet: the first candidate"
            if rule == "pinned"
            else "one usable candidate"
        )
        record = {**base, "rule": "pinned", "released": usable[0][0], "why": why}
        return Selection(usable[0][0], [_finish(record, 0)], {})
    losses = {name: np.asarray(score(task, pool_rows), dtype=np.float64) for name, task in usable}
    if rule == "best":
        means = {n: float(v.mean()) for n, v in losses.items()}
        best = min(means, key=lambda n: (means[n], names.index(n)))
        record = {**base, "compared": list(means), "released": best}
        return Selection(best, [_finish(record, 0)], {"pool_mean_loss": means})
    subsets = int(cfg.mechanism.subsets)
    a = membership_matrix(
        pool_size, subsets, cfg.mechanism.construction, public.generator("membership")
    ).astype(np.float64)
    counts = np.maximum(a.sum(axis=0), 1.0)
    subset_loss = {n: (v @ a) / counts for n, v in losses.items()}
    current, records = usable[0][0], []
    for challenger, _ in usable[1:]:
        prefer = int(np.count_nonzero(subset_loss[challenger] < subset_loss[current]))
        unanimous = prefer == subsets
        record = {
            **base,
            "incumbent": current,
            "challenger": challenger,
            "subsets": subsets,
            "prefer_challenger": prefer,  # a function of all M subsets: not of the secret
            "unanimous": unanimous,
            "released": challenger if unanimous else current,
        }
        current = record["released"]
        records.append(_finish(record, len(records)))
    private = {
        "subset_mean_loss": {n: v.tolist() for n, v in subset_loss.items()},
        "pool_mean_loss": {n: float(v.mean()) for n, v in losses.items()},
    }
    return Selection(current, records, private)


def _finish(record: dict[str, Any], index: int) -> dict[str, Any]:
    """A decision record: its place in the stage and what it cost (nothing, at I = 0)."""
    cost = {"mi_nats": 0.0} if record["rule"] in ("unanimous", "pinned") else {}
    return {"step": index, **record, "cost": cost}


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The chosen candidate, how, among which, and at what cost (public fields only)."""
    last = records[-1]
    out = {
        "chosen": last["released"],
        "rule": last["rule"],
        "candidates": last["candidates"],
        "decisions": len(records),
        "cost": last["cost"],
    }
    if last["rule"] == "unanimous":
        out["challenges_won"] = sum(1 for r in records if r["unanimous"])
    if "skipped" in last:
        out["skipped"] = last["skipped"]
    return out


def describe(selection: dict[str, Any]) -> str:
    """One line for the summary and the card."""
    chosen, rule = selection["chosen"], selection["rule"]
    among = ", ".join(selection["candidates"])
    if rule == "unanimous":
        won, tried = selection.get("challenges_won", 0), selection["decisions"]
        return (
            f"prompt '{chosen}' chosen privately among {among} ({won} of {tried} challenges "
            "won unanimously across the candidate subsets; cost I = 0: the choice is the same "
            "whichever subset is the secret)"
        )
    if rule == "best":
        return f"prompt '{chosen}' chosen among {among} by the lowest pool loss (not private)"
    return f"prompt '{chosen}' used, the first of {among}, not selected ({rule}: no cost)"


# ------------------------------------------------------------ the run directory


def write(run_path: Path, selection: Selection) -> None:
    """The public records, chained and durable (the private scores: ``PRIVATE_FILE``,
    written by the run directory under private/)."""
    log = JsonlLog(Path(run_path) / SELECTION_FILE, durable=True, chained=True)
    try:
        for record in selection.records:
            log.append(record)
    finally:
        log.close()


def read(run_path: Path) -> list[dict[str, Any]]:
    """The public selection records of a run (empty: it selected nothing)."""
    return read_chain(Path(run_path) / SELECTION_FILE)


def chosen_task(task: Any, run_path: Path | None) -> Any:
    """The task a run trained with: its chosen candidate's (from the public log), else the
    task as configured (pinned, or its first candidate)."""
    from paczero.tasks.registry import choices, pinned

    options = dict(choices(task))
    if not options:
        return task
    records = read(run_path) if run_path is not None else []
    if not records:
        return pinned(task)
    name = records[-1]["released"]
    if name not in options:
        raise UserError(
            f"{Path(run_path) / SELECTION_FILE} chose '{name}', which is not one of the "
            f"run's task.candidates ({', '.join(options)})"
        )
    return options[name]
