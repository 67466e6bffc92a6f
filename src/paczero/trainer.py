"""The training loop: rows, estimate, release, log (write-ahead), update, evaluate, checkpoint.

``train`` starts a run; ``paczero.durable`` resumes, replays and exports one; the model's
evaluation for the CLI is ``paczero.evaluation``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paczero import deadline
from paczero import progress as progress_lines
from paczero import selection as selection_stage
from paczero.config import RunConfig, load_config
from paczero.distributed import (
    SOLO,
    World,
    close_world,
    fingerprint,
    init_world,
    leave_together,
)
from paczero.divergence import stop_diverged
from paczero.engine.optim import StepResult, private_record
from paczero.environment import hardware, peak_memory, versions
from paczero.errors import Diverged, Interrupted
from paczero.exporting import base_identity, ready_to_share, write_run_card
from paczero.privacy.randomness import secret_stream
from paczero.records import ReleaseRecord
from paczero.replay import rebuild
from paczero.report import describe_result, plot_run_or_warn, privacy_report
from paczero.runs import (
    PRIVATE_FILE_MODE,
    RunDir,
    check_new_run_dir,
    default_run_dir,
    write_jsonl,
)
from paczero.session import Session, build_session, learning_rate, load_named, pool_losses
from paczero.signals import handled
from paczero.tasks.base import row_records
from paczero.tracking import open_tracker


@dataclass
class Result:
    run_dir: Path
    data: dict[str, Any]

    @property
    def test(self) -> dict[str, float]:
        return self.data["metrics"]["test"]

    @property
    def privacy(self) -> dict[str, Any]:
        return self.data["privacy"]

    def __str__(self) -> str:
        return describe_result(self.data, self.run_dir)


@progress_lines.honours_progress_flag
def train(
    config: RunConfig | dict | str | None = None,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
) -> Result:
    """Run one training run end to end and return its result (also in ``out/result.json``)."""
    started = time.perf_counter()
    cfg = load_config(config, overrides)
    world = init_world(cfg.model.device)
    try:
        world.check_same("the resolved config", json.dumps(cfg.public_dict(), sort_keys=True))

        def new_run_dir() -> str:
            path = Path(out) if out is not None else default_run_dir(cfg)
            check_new_run_dir(path)
            return str(path)

        out_path = Path(world.on_main(new_run_dir))
        secret, secret_source = (
            secret_stream(cfg.seed.secret) if world.is_main else (None, "rank 0")
        )
        session = build_session(cfg, secret, secret_source, world)
        check_ranks_agree(session)
        run = RunDir.create(out_path, cfg) if world.is_main else RunDir(out_path)
        # locked until the end; a failure before the first release removes the run
        with run.writing():
            if world.is_main:
                run.write_private(
                    "secret.json",
                    {"root": secret.root, "source": secret_source, "run_id": run.run_id()},
                )
                run.write_private("mechanism.json", session.mechanism.private_state_dict())
                if session.selection is not None:  # public decisions, private scores
                    selection_stage.write(run.path, session.selection)
                    run.write_private(selection_stage.PRIVATE_FILE, session.selection.private)
                canaries = getattr(session.task, "canary_record", None)  # docs/audit.md 4
                if canaries is not None:
                    run.write_private("canaries.json", canaries)
            trainer = Trainer(session, run, progress, started)
            trainer.save_checkpoint(0)  # theta_0, durable before any step
            result = trainer.run()
            leave_together(world)
            return result
    finally:
        close_world(world)  # after a failure: no barrier a dead peer would never reach


def check_ranks_agree(session: Session) -> None:
    """Every rank must start from the same config and the same trainable tensors."""
    what = fingerprint(session.cfg.public_dict(), session.trainable)
    session.world.check_same("the config and the trainable tensors", what)


class Trainer:
    """The loop and its bookkeeping; for a resume, ``restore`` rebuilds the bookkeeping from
    the logs (``paczero.durable`` restores theta and the mechanism)."""

    keep_checkpoints = 3

    def __init__(self, session: Session, run: RunDir, progress: bool, started: float):
        self.s = session
        self.world = session.world
        self.main = session.world.is_main  # only rank 0 writes the run directory
        self.run_dir = run
        self.progress = progress and self.main
        self.started = started
        self.kinds: Counter[str] = Counter()
        self.unanimous: list[bool] = []
        self.step_times: list[float] = []
        self.best: dict[str, Any] = {"step": None, "dev": None}
        self.best_dev_rows: list[dict] | None = None  # the dev-best evaluation's rows
        self.history: list[dict[str, Any]] = []
        # train.select: final: the dev rows are the private source's; they pick nothing and
        # their evaluations go to private/ only
        self.private_dev = session.cfg.train.select == "final"
        self.eval_s = 0.0
        self.next_step = 0
        self.resumed_from: int | None = None
        self._signal: int | None = None
        self.tracker = None  # paczero.tracking, while the loop runs (rank 0, train.report_to)
        self._record: ReleaseRecord | None = None  # the last public release record
        # train.checkpoints none: theta_0 kept in host memory instead of checkpoints/, so
        # that the dev-best model is rebuilt by replay at the end (the session is fresh)
        self.log_only = session.cfg.train.checkpoints == "none"
        self.theta0 = (
            [(n, p.detach().to("cpu", copy=True)) for n, p in session.trainable]
            if self.log_only
            else None
        )

    # ------------------------------------------------------------ the loop

    def run(self) -> Result:
        try:
            return self._run()
        except Diverged as err:  # a consistent checkpoint, then one line
            raise stop_diverged(self, err) from None

    def _run(self) -> Result:
        s, cfg = self.s, self.s.cfg
        setup_s = time.perf_counter() - self.started
        main = self.main
        with (
            self.run_dir.open_releases() if main else contextlib.nullcontext() as releases,
            self.run_dir.open_private_releases() if main else contextlib.nullcontext() as private,
            self.run_dir.open_metrics() if main else contextlib.nullcontext() as metrics_log,
            open_tracker(cfg, self.run_dir.path, _run_id(self.run_dir), main) as tracker,
            self._signals(),
        ):
            self.releases_log, self.private_log = releases, private
            self.metrics_log = metrics_log
            self.tracker = tracker
            if tracker is not None:
                tracker.seed_unanimity(self.unanimous)
            fresh = self.next_step == 0 and not self.history
            if fresh and (cfg.train.eval_at_start or cfg.train.eval_every):
                self.evaluate_dev(0)
            # a bar on a terminal, plain lines in a log (public values only: _postfix)
            bar = progress_lines.Bar(
                total=cfg.train.steps,
                initial=self.next_step,
                desc=cfg.mechanism.name,
                unit="step",
                enabled=self.progress,
                timing=not self.timing_secret,
            )
            with bar:
                result = None
                for step in range(self.next_step, cfg.train.steps):
                    if self.world.broadcast(s.mechanism.exhausted if self.main else None):
                        break
                    t0 = time.perf_counter()
                    result = self.step(step)
                    self.step_times.append(time.perf_counter() - t0)
                    self.next_step = step + 1
                    self._account(result.releases)
                    if tracker is not None and self._record is not None:
                        tracker.log_release(self._record)
                    self.after_step(self.next_step)  # may evaluate: the bar shows it
                    bar.set_postfix(self._postfix(result), refresh=False)
                    bar.update(1)
                self.final_dev()
                if result is not None:  # the last line shows the final evaluation
                    bar.set_postfix(self._postfix(result), refresh=False)
            return self.finish(setup_s)

    def step(self, step: int) -> StepResult:
        """One step; the optimizer picks its rows (the mechanism's or a public minibatch)."""
        s = self.s
        if s.mechanism.first_order:  # dp-sgd, backprop: whole gradients
            log = self.log_release if self.main else None
            return s.optimizer.step(lr=learning_rate(s.cfg, step), before_update=log)

        def losses(rows: np.ndarray, world: World = SOLO) -> torch.Tensor:
            out = pool_losses(
                s.loaded.model, s.task, s.pool, rows, _rows_cap(s), world, units=s.units
            )
            if not bool(torch.isfinite(out).all()):
                if not s.optimizer.rows_secret:  # the optimizer's draw: a DP sample is secret
                    raise Diverged(step, "the loss became non-finite")
                # Stopping here would publish something about the secret sample: each such
                # example counts 0 (the clip bounds it), and the public dev loss stops the run.
                out = torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
            return out

        lr = learning_rate(s.cfg, step)
        log = self.log_release if self.main else None
        return s.optimizer.step(losses, lr=lr, before_update=log)

    def log_release(self, result: StepResult) -> None:
        """Write-ahead, private record first: a crash between the two writes leaves the
        private log one record ahead, which resume drops (that release was never public
        nor applied); the public log is never ahead of the private one."""
        self.private_log.append(private_record(result))
        self._record = ReleaseRecord.of_step(result, self.s.mechanism)
        self.releases_log.append(self._record.to_json())

    def after_step(self, done: int) -> None:
        train = self.s.cfg.train
        if train.eval_every and done % train.eval_every == 0 and done < train.steps:
            self.evaluate_dev(done)
        if train.checkpoint_every and done % train.checkpoint_every == 0:
            self.save_checkpoint(done)
        signum = self.world.broadcast(self._stop_signal())  # rank 0 decides for every rank
        if signum is not None:
            self.save_checkpoint(done)
            raise Interrupted(self.run_dir.path, done, signum)

    def final_dev(self) -> None:
        """The dev evaluation of the last step, unless it has one."""
        if not self.history or self.history[-1]["step"] != self.next_step:
            self.evaluate_dev(self.next_step)

    def finish(self, setup_s: float) -> Result:
        s, run = self.s, self.run_dir
        steps_run = self.next_step
        self.final_dev()
        self.save_checkpoint(steps_run)
        if self.log_only:  # the dev-best model: theta_0 and the logged releases up to it
            if not self.private_dev:  # else the final model (live) is the released one
                rebuild(s, run, self.best["step"] or 0, run.releases(), theta0=self.theta0)
        else:
            if self.main:
                run.save_tensors("final", s.trainable, step=steps_run)
            self.world.barrier()  # every rank reads rank 0's dev-best tensors
            if not self.private_dev:  # else the final model is the released one
                load_named(s.trainable, run.load_tensors("best"))
        released = self.released_step(steps_run)
        t0 = time.perf_counter()
        with progress_lines.phase("test evaluation"):
            test_metrics, test_rows = s.task.evaluate_rows(
                s.loaded.model, s.test, s.cfg.train.eval_batch, s.world
            )
        if self.best_dev_rows is None:  # resumed after the dev-best evaluation: once more
            with progress_lines.phase("dev evaluation"):
                _, self.best_dev_rows = s.task.evaluate_rows(
                    s.loaded.model, s.dev, s.cfg.train.eval_batch, s.world
                )
        self.eval_s += time.perf_counter() - t0
        if not self.main:
            return Result(run_dir=run.path, data={})
        self.write_predictions("dev", self.best_dev_rows)
        self.write_predictions("test", test_rows)
        self.metrics_log.append({"step": released, "split": "test", **test_metrics})
        model_dir = run.path / "model"
        base = base_identity(s.cfg.model.name, s.loaded, s.cfg.seed.public, hashes=False)
        ready_to_share(s.loaded.model, base)  # the real base named, the KV cache on
        # paczero never resizes the vocabulary: PEFT need not look the base up to check it
        lora = {"save_embedding_layers": False} if s.cfg.model.track == "lora" else {}
        with progress_lines.quiet_library_bars():
            s.loaded.model.save_pretrained(model_dir, **lora)
            s.loaded.tokenizer.save_pretrained(model_dir)
        result = self.result(test_metrics, steps_run, setup_s)
        if self.timing_secret:  # measured, kept, not published (docs/algorithms.md 7.6)
            # where a stop (an --until deadline) cut the run is a function of its step times
            resumed = {"resumed_from_step": result["training"]["resumed_from_step"]}
            kept = {k: result[k] for k in ("timing", "memory")}
            run.write_private(TIMING_FILE, {**kept, "training": resumed})
            result.update(timing=dict(WITHHELD), memory=dict(WITHHELD))
            result["training"]["resumed_from_step"] = WITHHELD["withheld"]
        run.write_result(result)
        write_run_card(model_dir, run.path, s.cfg, base, released or 0, result)
        if self.tracker is not None:
            self.tracker.log_eval("test", released or 0, test_metrics)
            self.tracker.log_summary(result["privacy"], steps_run)
        plot_run_or_warn(run.path)
        return Result(run_dir=run.path, data=result)

    # ------------------------------------------------------------ pieces

    def evaluate_dev(self, step: int) -> None:
        s = self.s
        t0 = time.perf_counter()
        try:
            with progress_lines.phase("dev evaluation"), self._stoppable(s.loaded.model):
                dev_metrics, dev_rows = s.task.evaluate_rows(
                    s.loaded.model, s.dev, s.cfg.train.eval_batch, s.world
                )
        except _StopEvaluation:  # the step is logged; resume repeats this evaluation
            self.save_checkpoint(step)
            raise Interrupted(self.run_dir.path, step, self._stop_signal()) from None
        self.eval_s += time.perf_counter() - t0
        finite = all(math.isfinite(v) for v in dev_metrics.values() if isinstance(v, float))
        if not finite and not self.private_dev:
            raise Diverged(step, "the dev loss became non-finite")
        if self.private_dev:  # kept for the user under private/; published nowhere
            # Not even as a stop: where the run ends would tell what the private rows scored.
            if not finite:  # JSON has no NaN: a non-finite value is logged as null
                dev_metrics = {
                    k: v if not isinstance(v, float) or math.isfinite(v) else None
                    for k, v in dev_metrics.items()
                }
            self.history.append({"step": step, **dev_metrics})
            self.best_dev_rows = dev_rows  # the last one: the final model's at the end
            if self.main:
                with self.run_dir.open_private_metrics() as log:
                    log.append({"step": step, "split": "dev", **dev_metrics})
            return
        if self._note_dev(step, dev_metrics):
            self.best_dev_rows = dev_rows
            if self.main and not self.log_only:  # before the log line
                self.run_dir.save_tensors("best", s.trainable, step=step)
        if self.main:
            self.metrics_log.append({"step": step, "split": "dev", **dev_metrics})
        if self.tracker is not None:
            self.tracker.log_eval("dev", step, dev_metrics)

    def released_step(self, steps_run: int) -> int | None:
        """The step of the released (tested, saved) model: dev-best, or the final one."""
        return steps_run if self.private_dev else self.best["step"]

    def _note_dev(self, step: int, metrics: dict[str, Any]) -> bool:
        """Add a dev evaluation to the history; True if it is the new dev-best: the first
        of the task's metrics, higher is better; a tie goes to the lower dev loss (on a
        small dev set accuracy ties often while the loss says the model improved), and a
        tie in both keeps the earlier step."""
        metric = self.s.task.metric
        self.history.append({"step": step, **metrics})
        if better_dev(metrics, self.best["dev"], metric):
            self.best.update(step=step, dev=metrics)
            return True
        return False

    def restore(self, records: list[ReleaseRecord], metrics: list[dict[str, Any]]) -> None:
        """The bookkeeping of a run whose logs hold ``records`` and ``metrics``, as if
        this loop had written them: the next step, the release tally and the dev history
        with its best step (theta and the mechanism are restored by ``paczero.durable``)."""
        done = len(records)
        self.s.optimizer.step_index = done
        self.next_step = self.resumed_from = done
        for record in records:
            self.kinds.update(record.kinds)
            self.unanimous.extend(record.unanimity())
        for line in metrics:
            if line["split"] == "dev" and line["step"] <= done:
                values = {k: v for k, v in line.items() if k not in ("step", "split")}
                self._note_dev(line["step"], values)

    def write_predictions(self, split: str, rows: list[dict]) -> None:
        """Each row's prediction by the dev-best model, beside its input and label: under
        private/ when the split was carved from the pool's own (private) source."""
        coverage = self.s.coverage or {}
        private = coverage.get(f"{split}_from_pool_source", True)
        folder = self.run_dir.private_dir if private else self.run_dir.path / "predictions"
        inputs = self.s.inputs.get(split) or [{} for _ in rows]
        records = row_records(inputs, rows)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"predictions-{split}.jsonl" if private else f"{split}.jsonl"
        write_jsonl(folder / name, records, mode=PRIVATE_FILE_MODE if private else 0o644)

    def save_checkpoint(self, step: int) -> None:
        if not self.main or self.log_only:  # log-only: the logs are the checkpoint
            return
        s = self.s
        state = {
            "next_lr": learning_rate(s.cfg, step) if step < s.cfg.train.steps else None,
            "public_seed": s.cfg.seed.public,  # draws are keyed by (seed, step): no RNG state
            "mechanism": s.mechanism.state_dict(),
        }
        named = list(s.trainable)
        if not s.mechanism.replayable:  # the checkpoint is the model: the optimizer's too
            named += s.optimizer.named_state()
        self.run_dir.save_checkpoint(step, named, keep=self.keep_checkpoints, state=state)

    def _account(self, releases) -> None:
        self.kinds.update(r.kind for r in releases)
        self.unanimous.extend(
            bool(r.public["unanimous"]) for r in releases if "unanimous" in r.public
        )

    def _postfix(self, result: StepResult) -> dict[str, str]:
        """What the bar shows: public values only. A step on secret rows (DP sampling) shows
        the dev loss of the last evaluation instead of its own loss."""
        if result.rows_secret:
            shown = self.history and not self.private_dev  # private dev rows: nothing shown
            last = self.history[-1].get("loss") if shown else None
            post = {"dev_loss": f"{last:.4f}" if last is not None else "-"}
        else:
            post = {"loss": f"{result.loss:.4f}" if math.isfinite(result.loss) else "-"}
        if self.unanimous:
            post["unan"] = f"{100 * sum(self.unanimous) / len(self.unanimous):.0f}%"
        spent = self.s.mechanism.spent()
        if "charged" in spent and self.s.mechanism.private:
            post["charged"] = f"{spent['charged']:.4g}"
        if "epsilon" in spent:  # memoised per step: the log already computed it
            post["eps"] = f"{spent['epsilon']:.3g}"
        if self.best["dev"] is not None:
            metric = self.s.task.metric
            value = f"{self.best['dev'][metric]:.3f}"
            # the best dev figure so far; still the untrained model's: say so, rather than
            # seem to repeat a fresh evaluation at every step (train.eval_every: 0)
            post[f"dev_{metric[:3]}"] = value if self.best["step"] else f"{value} (step 0)"
        return post

    def _stop_signal(self) -> int | None:
        """The signal that stops the run: one received, or SIGTERM once an --until deadline
        has come (its signal may have arrived during set-up, before this loop's handler)."""
        if self._signal is None and deadline.due():
            return signal.SIGTERM
        return self._signal

    @contextlib.contextmanager
    def _signals(self):
        """SIGINT/SIGTERM finish the current step (or stop an evaluation between its
        micro-batches), checkpoint, then stop; a second one prints its line and ends the
        process by that signal's default action, at once (the write-ahead log keeps the run
        consistent, as after kill -9)."""

        def handler(signum, frame):
            if self._signal is None:
                self._signal = signum
                return
            sys.stderr.write(
                f"paczero: second signal: stopped at once; {self.run_dir.path} is consistent "
                f"up to its last logged step. Resume with: paczero resume {self.run_dir.path}\n"
            )
            sys.stderr.flush()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        with handled(handler):
            yield

    @contextlib.contextmanager
    def _stoppable(self, model: torch.nn.Module):
        """A signal stops an evaluation before its next forward pass (an evaluation of a
        large dev set runs for minutes). One process only: a rank that stopped alone would
        leave the others waiting in a collective."""
        if not self.world.solo:
            yield
            return

        def check(module, args):
            if self._stop_signal() is not None:
                raise _StopEvaluation

        hook = model.register_forward_pre_hook(check)
        try:
            yield
        finally:
            hook.remove()

    @property
    def timing_secret(self) -> bool:
        """A DP run's step time and memory grow with its secret Poisson sample."""
        return bool(self.s.mechanism.chooses_rows)

    def result(self, test_metrics, steps_run: int, setup_s: float) -> dict[str, Any]:
        s, cfg = self.s, self.s.cfg
        total_s = time.perf_counter() - self.started
        times = self.step_times
        records = selection_stage.read(self.run_dir.path)
        selected = {"selection": selection_stage.summary(records)} if records else {}
        return {
            "config": cfg.public_dict(),
            **selected,
            "metrics": {
                "metric": s.task.metric,
                "select": cfg.train.select,  # final: dev rows private, they picked nothing
                "dev_best": None if self.private_dev else self.best["dev"],
                "best_step": self.released_step(steps_run),  # the released model's step
                "dev_history": [] if self.private_dev else self.history,
                "test": test_metrics,
                "splits": {
                    "pool": s.pool_size,  # units with data.group_field
                    "dev": len(s.dev),
                    "test": len(s.test),
                    "provenance": s.provenance,
                },
            },
            "privacy": privacy_report(
                cfg,
                s.mechanism,
                self.kinds,
                self.unanimous,
                s.secret_source,
                steps_run,
                data=s.coverage,
                selection=selected.get("selection"),
            ).to_json(),  # fmt: skip
            "training": {
                "steps_run": steps_run,
                "steps_planned": cfg.train.steps,
                "stopped_early": steps_run < cfg.train.steps,
                "resumed_from_step": self.resumed_from,
                "restore": s.restore,
                "trainable_parameters": int(sum(p.numel() for _, p in s.trainable)),
                "model_source": s.loaded.source,
            },
            "timing": {
                "total_s": round(total_s, 3),
                "setup_s": round(setup_s, 3),
                "eval_s": round(self.eval_s, 3),
                "mechanism_setup_s": round(s.mechanism.configure_s, 3),
                "train_s": round(sum(times), 3),
                "step_s_median": round(statistics.median(times), 4) if times else None,
            },
            "memory": peak_memory(),
            "versions": versions(),
            "hardware": hardware(s.loaded.device),
        }


def better_dev(new: dict[str, Any], best: dict[str, Any] | None, metric: str) -> bool:
    """Whether a dev evaluation beats the dev-best so far (``Trainer._note_dev``)."""
    if best is None or new[metric] > best[metric]:
        return True
    if new[metric] < best[metric]:
        return False
    loss, best_loss = new.get("loss"), best.get("loss")
    return loss is not None and best_loss is not None and loss < best_loss


TIMING_FILE = "timing.json"
# result.json's timing and memory of a run whose step times depend on its secret sample
WITHHELD = {
    "withheld": "step times and memory grow with the secret Poisson sample (docs/algorithms.md "
    f"7.6): see private/{TIMING_FILE}"
}


class _StopEvaluation(Exception):
    """A stop signal arrived during an evaluation (``Trainer._stoppable``)."""


def _run_id(run: RunDir) -> str:
    try:
        return run.run_id()
    except Exception:  # a tracker name only; the run's identity is checked elsewhere
        return "run"


def _rows_cap(s) -> int:
    from paczero.engine.batch_budget import micro_batch_rows

    zo = s.cfg.zo
    return micro_batch_rows(zo.micro_batch, zo.micro_batch_tokens, s.loaded.device)
