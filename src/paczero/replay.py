"""A run's model at any logged step is theta_0 plus its release log (docs/algorithms.md 1.3).

``replay`` is the one loop that applies logged steps to theta: training rebuilds a diverged
step with it, resume and export rebuild a run's model, the audit redoes the run's forward
passes inside it. Each step is redone with the optimizer's float operations in its order, so
the tensors are bit-identical to the run's. A first-order run released whole gradients: its
log replays nothing, and only its checkpointed tensors give its model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from paczero.config import RunConfig
from paczero.engine.zo import ZOEstimator
from paczero.errors import UserError
from paczero.mechanisms import UNREPLAYABLE_KINDS
from paczero.models import LoadedModel
from paczero.records import ReleaseRecord
from paczero.runs import RunDir
from paczero.session import Session, load_named, restore_mode

# redo(step, record, seeds, amounts) -> whether it redid the step's forward passes
Redo = Callable[[int, ReleaseRecord, list[int], list[float]], bool]


def replayable(records: Sequence[ReleaseRecord]) -> bool:
    """Whether the model is a function of these records: none is a whole-gradient release
    (a kind of a mechanism that is not ``Mechanism.replayable``)."""
    return UNREPLAYABLE_KINDS.isdisjoint(kind for r in records for kind in r.kinds)


def not_replayable(path: Path, step: int, start: int | None = None) -> str:
    where = f"; its newest checkpoint is step {start}" if start is not None else ""
    return (
        f"{path} is a first-order run (whole gradients released): its model at step {step} "
        f"cannot be replayed from the release log, only loaded from a checkpoint of that "
        f"step{where} (set train.checkpoint_every=1 to make every step resumable)"
    )


def estimator_for(cfg: RunConfig, loaded: LoadedModel) -> ZOEstimator:
    """The run's estimator over a freshly loaded model (its eps and restore mode), for a
    replay outside the run's own session (export, audit)."""
    return ZOEstimator(
        [p for _, p in loaded.trainable],
        cfg.zo.eps,
        restore=restore_mode(cfg, loaded.model, loaded.trainable),
    )


def replay(
    estimator: ZOEstimator,
    records: Sequence[ReleaseRecord],
    directions: int,
    *,
    start: int = 0,
    redo: Redo | None = None,
) -> None:
    """Apply the logged steps ``start``, ``start + 1``, ... to theta.

    A step is replayed without a forward pass (``ZOEstimator.replay``), unless ``redo``
    (the audit's) redoes its forward passes: it then estimates along each of the step's
    directions (``ZOEstimator.estimate``, the last restore deferred, as the optimizer does)
    and returns True, and the loop applies the step's update.
    """
    if not replayable(records):
        raise UserError(
            "a first-order run (dp-sgd, backprop) released whole gradients: its model "
            "cannot be replayed from the release log; use its checkpointed tensors"
        )
    for step, record in enumerate(records, start):
        seeds = [int(s) for s in record.seeds]
        amounts = record.amounts(directions)
        if redo is not None and redo(step, record, seeds, amounts):
            estimator.update(list(zip(seeds, amounts, strict=True)))
        else:
            estimator.replay(seeds, amounts)


def rebuild(
    session: Session,
    run: RunDir,
    step: int,
    records: list[ReleaseRecord],
    theta0: list[tuple[str, torch.Tensor]] | None = None,
) -> None:
    """The session's trainable tensors after ``step`` steps: the newest readable checkpoint
    at or before it (there is always step 0, theta_0, on disk or, with train.checkpoints
    none, in memory: ``theta0``), then a replay of the records after it."""
    names = [n for n, _ in session.trainable]
    start, tensors = run.load_checkpoint(at_most=step, names=names)
    if tensors is None and theta0 is not None:
        start, tensors = 0, dict(theta0)
    if tensors is None:
        raise UserError(
            f"{run.path} has no readable checkpoint at or before step {step}, "
            "not even theta_0 (checkpoints/step-0000000)"
        )
    if not session.mechanism.replayable:
        if start != step:
            raise UserError(not_replayable(run.path, step, start))
        session.optimizer.load_named_state(tensors)  # Adam's moments, saved with the tensors
    load_named(session.trainable, tensors)
    if start != step:
        replay(
            session.optimizer.estimator,
            records[start:step],
            session.cfg.zo.directions,
            start=start,
        )
