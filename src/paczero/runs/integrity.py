"""The checks ``RunDir.verify`` makes before resume or export touches a run: the private
side belongs to this run, the public and private release logs pair up, the charges add
up, every checkpoint matches its release record, and metrics.jsonl evaluates logged steps.
Each is a function of what was read, and refuses with one line."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from paczero.errors import UserError
from paczero.privacy.ledger import GENESIS, LogError
from paczero.runs.files import read_json


def check_private_side(path: Path, run_id: str) -> None:
    """private/ holds this run's secret and mechanism state (``run_id`` from run.json)."""
    private = path / "private"
    secret = private / "secret.json"
    if not secret.exists():
        raise UserError(
            f"{secret} is missing: the secret cannot be re-drawn, so this run cannot be resumed"
        )
    info = read_json(secret, "secret file")
    if info.get("run_id") != run_id:
        raise UserError(
            f"{path}/private/ belongs to a different run (its run id differs from "
            "run.json: private/ was copied from elsewhere); refusing to resume"
        )
    if not isinstance(info.get("root"), int) or not isinstance(info.get("source"), str):
        raise UserError(f"{secret} is damaged (no secret root)")
    mechanism = private / "mechanism.json"
    if not mechanism.exists():
        raise UserError(
            f"{mechanism} is missing: the secret mechanism state (S*) cannot be re-drawn, "
            "so this run cannot be resumed"
        )
    read_json(mechanism, "mechanism state file")


def private_ahead(public: list[dict[str, Any]], private: list[dict[str, Any]]) -> bool:
    """The private log holds one record more: a release that was never published."""
    n = len(public)
    return len(private) == n + 1 and private[-1].get("step") == n


def check_pair(
    public: list[dict[str, Any]], private: list[dict[str, Any]], public_path, private_path
) -> None:
    if len(private) != len(public):
        raise UserError(
            f"{private_path} holds {len(private)} records for the {len(public)} "
            f"steps of {public_path}: the public and private release logs disagree; "
            "this run cannot be resumed"
        )


def check_charges(records: list[dict[str, Any]], releases_path: Path) -> None:
    if not records:
        return
    try:
        charged = math.fsum(float(r["charge"]) for r in records)
        logged = float(records[-1]["cumulative"])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{releases_path}: a record lacks its charge") from None
    if abs(charged - logged) > 1e-9 * max(1.0, abs(logged)):
        raise UserError(
            f"{releases_path}: charges add up to {charged!r} but the log says "
            f"{logged!r}; the ledger is inconsistent"
        )


def check_checkpoints(
    path: Path,
    records: list[dict[str, Any]],
    states: Iterable[tuple[int, dict[str, Any] | None]],
) -> list[int]:
    """Every readable checkpoint (``states``: each step with its state.json, None where
    unreadable) must include exactly the records its ``log`` hash names."""
    n = len(records)
    good = []
    for step, state in states:
        name = f"checkpoints/step-{step:07d}"
        if state is None:
            continue  # unreadable: load_checkpoint passes over it with a note
        if step > n:
            raise UserError(
                f"{path}/{name} is ahead of releases.jsonl ({n} steps): the log lost "
                "records it had committed; this run cannot be resumed or exported"
            )
        expected = GENESIS if step == 0 else records[step - 1]["sha"]
        if state.get("log") != expected or state.get("step") != step:
            line = f"line {step}" if step else "its start"
            raise UserError(
                f"{path}/{name} does not match releases.jsonl {line}: the checkpoint "
                "and the log come from different runs or one was edited"
            )
        if step and state.get("mechanism") != records[step - 1].get("state"):
            raise UserError(
                f"{path}/{name}: its mechanism state differs from releases.jsonl line "
                f"{step}; one of them was edited"
            )
        good.append(step)
    return good


def check_metrics(path: Path, metrics: list[dict[str, Any]], steps: int) -> None:
    """``path``: metrics.jsonl, whose lines ``metrics`` are."""
    for number, line in enumerate(metrics, 1):
        step, split = line.get("step"), line.get("split")
        if split not in ("dev", "test") or not isinstance(step, int | None):
            raise LogError(path, number, "is not a dev or test evaluation")
        if split == "dev" and not (isinstance(step, int) and 0 <= step <= steps):
            raise LogError(
                path, number, f"evaluates step {step!r}, beyond the {steps} logged steps"
            )


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """The first dotted key whose value differs between two nested mappings."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            found = first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    same = a == b and type(a) is type(b) or (isinstance(a, float) and a == b)
    return None if same else prefix.rstrip(".")
