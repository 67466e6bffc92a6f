"""Resume, replay and export: a run is theta_0 plus its release log (docs/algorithms.md 1.3).

Resume rebuilds a killed run exactly where its write-ahead log ends; export rebuilds the
model of any logged step from the base model and the log alone.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from pathlib import Path
from typing import Any

from paczero.config import load_config
from paczero.distributed import close_world, init_world
from paczero.errors import UserError
from paczero.exporting import write_export
from paczero.models import load_model
from paczero.privacy.randomness import RandomStream, public_stream
from paczero.progress import honours_progress_flag
from paczero.runs import RunDir, open_run
from paczero.session import build_session, load_named, restore_mode
from paczero.trainer import Result, Trainer, check_ranks_agree
from paczero.zo import ZOEstimator


@honours_progress_flag
def resume(path: str | Path, progress: bool = True) -> Result:
    """Continue a killed or interrupted run exactly where its release log ends.

    The model is rebuilt from the newest checkpoint plus a replay of the logged releases
    (no forward pass); the mechanism's posterior and spend come from the last logged
    release; the secret is read from private/, never re-drawn.
    """
    started = time.perf_counter()
    run = open_run(path)
    if (run.path / "result.json").exists():
        raise UserError(f"{run.path} is a finished run (result.json exists); nothing to resume")
    cfg = load_config(str(run.config_path))
    world = init_world(cfg.model.device)  # any number of processes, whatever the run had
    try:
        found: dict[str, tuple[int, str]] = {}  # rank 0 reads private/; it never leaves it
        world.on_main(lambda: found.setdefault("secret", _read_secret(run)) and None)
        root, source = found.get("secret", (0, "rank 0"))
        stream = RandomStream(root, "secret") if world.is_main else None
        session = build_session(cfg, stream, source, world)
        trainer = Trainer(session, run, progress, started)
        restore_from_log(trainer)
        check_ranks_agree(session)
        return trainer.run()
    finally:
        close_world(world)


def _read_secret(run: RunDir) -> tuple[int, str]:
    """The secret root and its source from private/ (rank 0 only): never re-drawn."""
    secret_file = run.private_dir / "secret.json"
    if not secret_file.exists():
        raise UserError(
            f"{run.path}/private/secret.json is missing: the secret cannot be re-drawn, "
            "so this run cannot be resumed"
        )
    info = json.loads(secret_file.read_text())
    if info.get("run_id") != run.run_id():
        raise UserError(
            f"{run.path}/private/ belongs to a different run (config.yaml changed or "
            "private/ was copied from elsewhere); refusing to resume"
        )
    return int(info["root"]), info["source"]


def restore_from_log(trainer: Trainer) -> None:
    """Theta, mechanism state and bookkeeping at the end of the release log (rank 0
    repairs the logs and restores the mechanism; every rank rebuilds theta)."""
    s, run, main = trainer.s, trainer.run_dir, trainer.main
    if main:
        run.releases(repair=True)
        run.metrics(repair=True)
    trainer.world.barrier()
    records = run.releases()
    done = len(records)
    if [r["step"] for r in records] != list(range(done)):
        raise UserError(f"{run.path}/releases.jsonl is not a gap-free step sequence")
    rebuild(trainer, done, records)
    if records and main:
        private = json.loads((run.private_dir / "mechanism.json").read_text())
        s.mechanism.load_state_dict(records[-1]["state"], private)
        charged = math.fsum(r["charge"] for r in records)
        logged = records[-1]["cumulative"]
        if abs(charged - logged) > 1e-9 * max(1.0, abs(logged)):
            raise UserError(
                f"{run.path}/releases.jsonl: charges add up to {charged!r} but the log "
                f"says {logged!r}; the ledger is inconsistent"
            )
    s.optimizer.step_index = done
    trainer.next_step = done
    trainer.resumed_from = done
    for record in records:
        trainer.kinds.update(record["kinds"])
        trainer.unanimous.extend(bool(p["unanimous"]) for p in record["public"] if "unanimous" in p)
    for line in run.metrics():
        if line["split"] == "dev" and line["step"] <= done:
            metrics = {k: v for k, v in line.items() if k not in ("step", "split")}
            trainer.history.append({"step": line["step"], **metrics})
            if trainer.best["dev"] is None or (
                metrics[s.task.metric] > trainer.best["dev"][s.task.metric]
            ):
                trainer.best.update(step=line["step"], dev=metrics)
    best = trainer.best["step"]
    if main and best is not None and run.tensors_step("best") != best:
        current = [(n, p.detach().clone()) for n, p in s.trainable]
        rebuild(trainer, trainer.best["step"], records)
        run.save_tensors("best", s.trainable, step=trainer.best["step"])
        load_named(s.trainable, dict(current))
    trainer.world.barrier()  # rank 0's dev-best tensors are on disk for every rank
    with run.open_metrics() if main else contextlib.nullcontext() as metrics_log:
        trainer.metrics_log = metrics_log
        cfg = s.cfg.train
        due = done and cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps
        if due and (not trainer.history or trainer.history[-1]["step"] != done):
            trainer.evaluate_dev(done)  # the eval the kill interrupted


def rebuild(trainer: Trainer, step: int, records: list[dict[str, Any]]) -> None:
    """Trainable tensors after ``step`` steps: newest checkpoint <= step, then replay."""
    s = trainer.s
    start, tensors = trainer.run_dir.load_checkpoint(at_most=step)
    if tensors is not None:
        load_named(s.trainable, tensors)
    replay(s.optimizer.estimator, records[start:step], s.cfg.zo.directions)


def replay(estimator, records: list[dict[str, Any]], directions: int) -> None:
    """Apply logged steps to theta without a forward pass (the same float operations)."""
    for record in records:
        amounts = [record["lr"] * c / directions for c in record["coeffs"]]
        estimator.replay(record["seeds"], amounts)


def export(
    run_path: str | Path, to: str | Path, step: str | int = "best", merge: bool = False
) -> dict[str, Any]:
    """Rebuild a run's model from the base model and the release log alone, and save it.

    ``step``: ``best`` (the dev-best step), ``final``, or a step number. Writes a PEFT
    adapter (LoRA; ``merge``: a full model with the adapter merged in) or a full HF model
    directory that loads anywhere (``paczero.exporting``), with the tokenizer, a model card
    (README.md) with the privacy report, and ``paczero_export.json``.
    """
    run = open_run(run_path)
    to = Path(to)
    if to.exists() and any(to.iterdir()):
        raise UserError(f"export target {to} is not empty; choose another --to")
    cfg = load_config(str(run.config_path))
    records = run.releases()
    target = _export_step(run, step, len(records))
    public = public_stream(cfg.seed.public)
    loaded = load_model(cfg.model, seed=public.seed("model-init"))
    estimator = ZOEstimator(
        [p for _, p in loaded.trainable],
        cfg.zo.eps,
        restore=restore_mode(cfg, loaded.model, loaded.trainable),
    )
    replay(estimator, records[:target], cfg.zo.directions)
    to.mkdir(parents=True, exist_ok=True)
    info = {"run": str(run.path), "step": target, "base_model": cfg.model.name}
    info["track"] = cfg.model.track
    return write_export(to, loaded, cfg, run, info, records[:target], merge=merge)


def _export_step(run: RunDir, step: str | int, logged: int) -> int:
    if step == "final":
        return logged
    if step == "best":
        dev = [m for m in run.metrics() if m["split"] == "dev" and m["step"] <= logged]
        if not dev:
            raise UserError(f"{run.path} has no dev evaluation; use --step final or a number")
        metric = "f1" if "f1" in dev[0] else "accuracy"
        return max(dev, key=lambda m: (m[metric], -m["step"]))["step"]
    try:
        number = int(step)
    except ValueError:
        raise UserError(f"--step must be best, final or a step number, got '{step}'") from None
    if not 0 <= number <= logged:
        raise UserError(f"--step {number} is outside the logged steps 0..{logged}")
    return number
