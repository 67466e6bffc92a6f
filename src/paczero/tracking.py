"""Experiment tracking (``train.report_to``): TensorBoard, Weights & Biases, Trackio.

Every value sent is public (docs/algorithms.md 8): it is read from the public release
record exactly as ``releases.jsonl`` holds it, from the dev and test evaluations of
``metrics.jsonl``, and from ``result.json``'s privacy report. So a DP step sends no loss
(its sampled batch's loss is secret and the public record has none), and nothing under
``private/`` is ever read here. Only rank 0 tracks: the other ranks of a torchrun run
open nothing.

What is logged, against the number of steps done:

- ``train/lr``, ``train/coeff`` (mean released coefficient), ``train/loss`` (the loss
  estimate, only where the record is public about it: never for DP steps);
- ``privacy/charge`` and ``privacy/mi_charged`` (PACZero: the step's and the path's
  charges in nats), ``privacy/epsilon`` (DP: epsilon spent so far);
- ``privacy/unanimous`` (this step's fraction of unanimous releases) and
  ``privacy/unanimity`` (running fraction), for mechanisms that report unanimity;
- ``dev/<metric>``, ``test/<metric>``; at the end, the report's bound and matched figures
  under ``summary/``.

A DP run's step times grow with its secret Poisson sample (docs/algorithms.md 7.6), so its
trackers carry no clock: TensorBoard events get the step as their wall time, in a file of
fixed name; W&B and Trackio receive every value at the end of the run, in one batch.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from paczero.errors import UserError
from paczero.records import ReleaseRecord

BACKENDS = ("tensorboard", "wandb", "trackio")
TENSORBOARD_DIR = "tensorboard"
PROJECT_ENV = "PACZERO_TRACKING_PROJECT"  # W&B / Trackio project (default "paczero")
INSTALL = {
    "tensorboard": "pip install tensorboard (or paczero[track])",
    "wandb": "pip install wandb",
    "trackio": "pip install trackio",
}


def check_backends(names: list[str] | tuple[str, ...]) -> None:
    """One line naming the first backend that is unknown or not installed."""
    for name in names:
        if name not in BACKENDS:
            raise UserError(f"train.report_to: unknown backend '{name}'; use {', '.join(BACKENDS)}")
        if importlib.util.find_spec(name) is None:
            raise UserError(
                f"train.report_to names {name}, but the {name} package is not installed: "
                f"{INSTALL[name]}"
            )


def step_values(record: ReleaseRecord, private: bool) -> dict[str, float]:
    """The tracked figures of one public release record (and nothing else)."""
    values: dict[str, float] = {"train/lr": float(record.lr)}
    coeffs = record.coeffs
    if coeffs:
        values["train/coeff"] = float(sum(coeffs) / len(coeffs))
    if record.loss is not None:  # absent on secret rows (DP)
        values["train/loss"] = float(record.loss)
    if record.epsilon is not None:
        values["privacy/epsilon"] = float(record.epsilon)
    elif private:
        values["privacy/charge"] = float(record.charge)
        values["privacy/mi_charged"] = float(record.cumulative)
    flags = record.unanimity()
    if flags:
        values["privacy/unanimous"] = sum(flags) / len(flags)
    return values


def eval_values(split: str, metrics: dict[str, Any]) -> dict[str, float]:
    return {
        f"{split}/{key}": float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def summary_values(privacy: dict[str, Any]) -> dict[str, float]:
    """The report's headline figures (public: result.json holds them)."""
    out: dict[str, float] = {}
    for key in ("mi_bound", "posterior_bound", "matched_epsilon", "matched_mi"):
        value = privacy.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"summary/{key}"] = float(value)
    spent = privacy.get("spent") or {}
    for key in ("epsilon", "charged"):
        value = spent.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"summary/spent_{key}"] = float(value)
    if privacy.get("unanimity_fraction") is not None:
        out["summary/unanimity_fraction"] = float(privacy["unanimity_fraction"])
    return out


class _TensorBoard:
    def __init__(self, run_dir: Path, config_text: str, clock: bool = True):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # torch's writer needs the tensorboard package
            raise UserError(
                f"train.report_to names tensorboard, but its writer cannot load ({err}): "
                f"{INSTALL['tensorboard']}"
            ) from None
        folder = run_dir / TENSORBOARD_DIR
        self.writer = SummaryWriter(log_dir=str(folder)) if clock else _StepTimedWriter(folder)
        self.writer.add_text("config", "```\n" + config_text + "\n```", 0)

    def log(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _StepTimedWriter:
    """TensorBoard events whose bytes are a function of the values and steps logged: one
    file of fixed name (SummaryWriter's names hold the time, host and pid), each event's wall
    time its step (in seconds after 1970). A resumed run appends to the same file."""

    FILE = "events.out.tfevents.0000000000.paczero"

    def __init__(self, folder: Path):
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.FILE
        fresh = not path.exists()
        self._records = RecordWriter(open(path, "ab"))  # noqa: SIM115 - closed by close()
        if fresh:
            self._write(Event(wall_time=0.0, file_version="brain.Event:2"))

    def _write(self, event: Any) -> None:
        self._records.write(event.SerializeToString())

    def _summary(self, summary: Any, step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self._write(Event(wall_time=float(step), step=int(step), summary=summary))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        from torch.utils.tensorboard.summary import scalar

        self._summary(scalar(tag, value), step)

    def add_text(self, tag: str, text: str, step: int) -> None:
        from torch.utils.tensorboard.summary import text as text_summary

        self._summary(text_summary(tag, text), step)

    def flush(self) -> None:
        self._records.flush()

    def close(self) -> None:
        self._records.close()


class _WandbLike:
    """W&B and Trackio share the API: init(project, name, config), log(values, step), finish."""

    def __init__(
        self,
        module_name: str,
        run_dir: Path,
        run_id: str,
        config: dict[str, Any],
        clock: bool = True,
    ):
        import importlib

        # without a clock (DP), values wait for the end: the service stamps each call's time
        self.waiting: list[tuple[dict[str, float], int]] | None = None if clock else []

        self.module = importlib.import_module(module_name)
        project = os.environ.get(PROJECT_ENV, "paczero")
        # one id per run directory: a resumed run continues the same tracked run
        name = re.sub(r"[^A-Za-z0-9_-]", "-", f"{run_dir.name}-{run_id[:8]}")[-64:]
        if module_name == "wandb":
            self.run = self.module.init(
                project=project, name=run_dir.name, id=name, resume="allow",
                dir=str(run_dir), config=config,
            )  # fmt: skip
        else:
            self.run = self.module.init(project=project, name=name, config=config, resume="allow")

    def log(self, values: dict[str, float], step: int) -> None:
        if self.waiting is not None:
            self.waiting.append((values, step))
        else:
            self.module.log(values, step=step)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        for values, step in self.waiting or ():
            self.module.log(values, step=step)
        self.module.finish()


class Tracker:
    """The run's backends; ``log_*`` take public values only (see the module doc)."""

    def __init__(self, backends: list[Any], private: bool):
        self.backends = backends
        self.private = private
        self._agree = 0
        self._releases = 0

    def _send(self, values: dict[str, float], step: int) -> None:
        for backend in self.backends:
            backend.log(values, step)

    def seed_unanimity(self, unanimous: list[bool]) -> None:
        """A resumed run continues the running fraction from its logged releases."""
        self._agree, self._releases = sum(unanimous), len(unanimous)

    def log_release(self, record: ReleaseRecord) -> None:
        values = step_values(record, self.private)
        flags = record.unanimity()
        if flags:
            self._agree += sum(flags)
            self._releases += len(flags)
            values["privacy/unanimity"] = self._agree / self._releases
        self._send(values, int(record.step) + 1)

    def log_eval(self, split: str, step: int, metrics: dict[str, Any]) -> None:
        self._send(eval_values(split, metrics), int(step))
        for backend in self.backends:
            backend.flush()

    def log_summary(self, privacy: dict[str, Any], step: int) -> None:
        self._send(summary_values(privacy), int(step))

    def close(self) -> None:
        for backend in self.backends:
            with contextlib.suppress(Exception):  # a backend's shutdown never fails a run
                backend.close()


@contextlib.contextmanager
def open_tracker(cfg, run_dir: Path, run_id: str, main: bool) -> Iterator[Tracker | None]:
    """The tracker of a run (None without ``train.report_to`` and on ranks other than 0)."""
    names = list(getattr(cfg.train, "report_to", None) or [])
    if not names or not main:
        yield None
        return
    check_backends(names)

    public = cfg.public_dict()
    backends: list[Any] = []
    mechanism = cfg.mechanism_type
    tracker = Tracker(backends, private=bool(mechanism.private))
    clock = not mechanism.chooses_rows  # a DP run's times depend on its secret sample
    try:
        for name in dict.fromkeys(names):
            if name == "tensorboard":
                backends.append(_TensorBoard(run_dir, cfg.to_yaml(), clock=clock))
            else:
                backends.append(_WandbLike(name, run_dir, run_id, public, clock=clock))
        yield tracker
    finally:
        tracker.close()
