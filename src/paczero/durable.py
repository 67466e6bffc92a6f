"""Resume, replay and export: a run is theta_0 plus its release log (docs/algorithms.md 1.3).

Resume rebuilds a killed run exactly where its write-ahead log ends; export rebuilds the
model of any logged step from the base model and the log alone. Both verify the whole run
directory first (``RunDir.verify``) and refuse a damaged or mixed-up one with one line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from paczero.config import load_config
from paczero.distributed import close_world, init_world, leave_together
from paczero.divergence import DIVERGED, stop_diverged
from paczero.errors import Diverged, Stopped, UserError
from paczero.exporting import chosen_prompt, write_export
from paczero.models import load_model
from paczero.privacy.randomness import RandomStream, public_stream
from paczero.progress import honours_progress_flag
from paczero.replay import estimator_for, not_replayable, rebuild, replay
from paczero.runs import (
    RunDir,
    atomic_write_bytes,
    notice,
    open_run,
    read_json,
    safetensors_os_error,
    write_json,
)
from paczero.session import build_session, load_named
from paczero.signals import handled
from paczero.trainer import Result, Trainer, better_dev, check_ranks_agree

# What `resume --set` may change: not the releases' privacy (train.steps only where the
# mechanism's guarantee does not count the steps: ``_check_steps``).
RESUMABLE_KEYS = ("train.lr", "train.steps")


@honours_progress_flag
def resume(
    path: str | Path, progress: bool = True, overrides: list[str] | tuple[str, ...] = ()
) -> Result:
    """Continue a killed or interrupted run exactly where its release log ends.

    The whole directory is verified first (identity, hash chains, checkpoints, metrics);
    the model is rebuilt from the newest readable checkpoint plus a replay of the logged
    releases (no forward pass); the mechanism's posterior and spend come from the last
    logged release; the secret is read from private/, never re-drawn. ``overrides`` may
    change ``RESUMABLE_KEYS`` only (a run that diverged continues only with one changed).
    """
    started = time.perf_counter()
    run = open_run(path)
    run.check_config()  # an edit by hand would change the logged steps' meaning
    stored = load_config(str(run.config_path))
    cfg = load_config(str(run.config_path), overrides) if overrides else stored
    changed = _changed_keys(stored.public_dict(), cfg.public_dict())
    world = init_world(cfg.model.device)  # any number of processes, whatever the run had
    try:
        found: dict[str, tuple[int, str]] = {}  # rank 0 reads private/; it never leaves it
        world.on_main(lambda: found.setdefault("secret", _prepare(run, cfg, changed)) and None)
        root, source = found.get("secret", (0, "rank 0"))
        with run.writing():  # rank 0 holds the lock until here; OSError -> one line
            stream = RandomStream(root, "secret") if world.is_main else None
            session = build_session(cfg, stream, source, world, run_path=run.path)
            trainer = Trainer(session, run, progress, started)
            try:
                restore_from_log(trainer)  # may evaluate the dev set
            except Diverged as err:
                raise stop_diverged(trainer, err) from None
            check_ranks_agree(session)
            result = trainer.run()
            leave_together(world)
            return result
    finally:
        run.unlock()
        close_world(world)  # after a failure: no barrier a dead peer would never reach


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(prefix + key)
    return keys


def _prepare(run: RunDir, cfg, changed: list[str]) -> tuple[int, str]:
    """Rank 0, before anything is built: lock, verify, then repair what a crash leaves.
    Returns the secret root and its source."""
    run.lock()
    try:
        if (run.path / "result.json").exists():
            raise UserError(f"{run.path} is a finished run (result.json exists); nothing to resume")
        refused = [k for k in changed if k not in RESUMABLE_KEYS]
        if refused:
            raise UserError(
                f"resume --set cannot change {refused[0]}: the logged steps were taken with it "
                f"(resume may change {', '.join(RESUMABLE_KEYS)}; start a new run otherwise)"
            )
        marker = run.path / DIVERGED
        diverged = read_json(marker, "divergence note") if marker.exists() else None
        if diverged is not None and not changed:
            key = diverged.get("key", RESUMABLE_KEYS[0])
            raise UserError(
                f"{run.path} diverged at step {diverged.get('step')} ({diverged.get('what')}); "
                f"it would diverge again with the same config: continue with a changed key, "
                f"e.g. paczero resume {run.path} --set {key}=SMALLER (or start a new run)"
            )
        verified = run.verify(private=True)
        if "train.steps" in changed:
            _check_steps(cfg, len(verified.records))
        # verified: now repair what a crash leaves (never a committed public record)
        for entry in run.clean_temporaries():
            notice(f"removed {entry.relative_to(run.path)}, left by an interrupted write")
        run.releases(repair=True)  # torn last lines; a private record never published
        metrics = run.metrics(repair=True)
        tests = [i for i, m in enumerate(metrics) if m.get("split") == "test"]
        if tests:  # a finish killed after its test line: it is written again, once
            run.cut_metrics(tests[0])
        if changed:
            _record_change(run, cfg, changed, len(verified.records))
            marker.unlink(missing_ok=True)
        info = read_json(run.private_dir / "secret.json", "secret file")
        return int(info["root"]), str(info["source"])
    except BaseException:
        run.unlock()
        raise


def _check_steps(cfg, done: int) -> None:
    """A new train.steps: at least the steps taken, and only where the guarantee holds
    for any number of steps (PACZero-ZPL, the non-private mechanisms)."""
    reason = cfg.mechanism_type.counts_steps
    if reason:
        raise UserError(
            f"resume --set cannot change train.steps of a {cfg.mechanism.name} run: {reason} "
            "(start a new run for another number of steps)"
        )
    if cfg.train.steps < done:
        raise UserError(
            f"resume --set train.steps={cfg.train.steps}: the run has taken {done} steps already"
        )


def _record_change(run: RunDir, cfg, changed: list[str], step: int) -> None:
    """config.yaml takes the new values; run.json says from which step they hold."""
    info = read_json(run.path / "run.json", "run identity file")
    values = cfg.public_dict()
    change = {}
    for key in changed:
        node: Any = values
        for part in key.split("."):
            node = node[part]
        change[key] = node
    info.setdefault("changes", []).append({"from_step": step, "set": change})
    if "config" in info:  # the config config.yaml must match from now on
        info["config"] = values
    write_json(run.path / "run.json", info)
    atomic_write_bytes(run.config_path, cfg.to_yaml().encode())


def restore_from_log(trainer: Trainer) -> None:
    """Theta, mechanism state and bookkeeping at the end of the release log (rank 0
    restores the mechanism; every rank rebuilds theta). Every rebuild starts from theta_0:
    a readable step-0 checkpoint, written again from the freshly built model if it is gone
    (a kill before it was durable, checkpoints/ deleted or never written), or, with
    train.checkpoints none, the fresh model's tensors kept in memory."""
    s, run, main = trainer.s, trainer.run_dir, trainer.main
    records = run.releases(kinds=s.cfg.mechanism_type.kinds)
    done = len(records)
    if not s.mechanism.replayable:
        _check_first_order_checkpoint(run, done)
    if main and not trainer.log_only:
        _ensure_theta0(trainer)
    trainer.world.barrier()
    rebuild(s, run, done, records, theta0=trainer.theta0)
    if records and main:
        private = read_json(run.private_dir / "mechanism.json", "mechanism state file")
        s.mechanism.load_state_dict(records[-1].state, private)
    trainer.restore(records, run.metrics())
    best = trainer.best["step"]
    stale = run.tensors_step("best") != best
    if main and best is not None and stale and not trainer.log_only:
        current = [(n, p.detach().clone()) for n, p in s.trainable]
        rebuild(s, run, trainer.best["step"], records, theta0=trainer.theta0)
        run.save_tensors("best", s.trainable, step=trainer.best["step"])
        load_named(s.trainable, dict(current))
    trainer.world.barrier()  # rank 0's dev-best tensors are on disk for every rank
    with run.open_metrics() if main else contextlib.nullcontext() as metrics_log:
        trainer.metrics_log = metrics_log
        cfg = s.cfg.train
        due = done and cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps
        if due and (not trainer.history or trainer.history[-1]["step"] != done):
            trainer.evaluate_dev(done)  # the eval the kill interrupted


def _check_first_order_checkpoint(run: RunDir, done: int) -> None:
    """A first-order run resumes only from a checkpoint of its last logged step: its log
    holds whole gradients' effects, not seeds and coefficients that replay."""
    if done and done not in run.checkpoint_steps():
        raise UserError(
            f"{run.path} cannot be resumed: a first-order run (dp-sgd, backprop) releases "
            f"whole gradients, so its release log cannot rebuild the model, and "
            f"checkpoints/ holds no checkpoint of its last logged step {done}"
        )


def _ensure_theta0(trainer: Trainer) -> None:
    """The session was just built, so its trainable tensors are theta_0."""
    run = trainer.run_dir
    names = [n for n, _ in trainer.s.trainable]
    step, tensors = run.load_checkpoint(at_most=0, names=names)
    if tensors is None:
        shutil.rmtree(run.path / "checkpoints" / f"step-{0:07d}", ignore_errors=True)
        trainer.save_checkpoint(0)


def export(
    run_path: str | Path,
    to: str | Path,
    step: str | int = "best",
    merge: bool = False,
    base: str | Path | None = None,
) -> dict[str, Any]:
    """Rebuild a run's model from the base model and the release log alone, and save it.

    ``step``: ``best`` (the dev-best step), ``final``, or a step number. Writes a PEFT
    adapter (LoRA; ``merge``: a full model with the adapter merged in) or a full HF model
    directory that loads anywhere (``paczero.exporting``), with the tokenizer, a model card
    (README.md) with the privacy report, and
    ``paczero_export.json`` with everything needed to rebuild the base (a seed-built tiny
    model needs the run's ``seed.public``). The run directory is verified first; the
    target is written whole or not at all. ``base``: a local copy of the base model that
    a LoRA adapter names instead (``--base PATH``: it loads offline).
    """
    run = open_run(run_path)
    to = Path(to)
    _check_export_target(to)
    run.check_config()
    cfg = load_config(str(run.config_path))
    verified = run.verify(private=False)
    records = verified.records
    if step == "best" and cfg.train.select == "final":  # the released model: the final one
        step = "final"
    target = _export_step(run, step, len(records), verified.metrics)
    public = public_stream(cfg.seed.public)
    loaded = load_model(cfg.model, seed=public.seed("model-init"))
    _rebuild_fresh(run, cfg, loaded, records, step, target)
    public_cfg = cfg.public_dict()
    info = {
        "run": str(run.path),
        "run_id": run.run_id(),
        "step": target,
        "base_model": cfg.model.name,
        "track": cfg.model.track,
        "seed_public": cfg.seed.public,  # a tiny model's weights come from it
        "model": public_cfg["model"],
        "task": public_cfg["task"],
        **chosen_prompt(cfg, run.path),  # the chosen candidate's task, when it selected
    }
    to.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(to)
    staging = Path(tempfile.mkdtemp(dir=to.parent, prefix=f"{_staging_prefix(to)}{os.getpid()}-"))

    def stop(signum: int, frame: object) -> None:
        raise Stopped(f"export stopped by signal {signum}; nothing was written to {to}", signum)

    try:
        with handled(stop):
            info = write_export(
                staging, loaded, cfg, run, info, records[:target], merge=merge, base_path=base
            )
            if to.exists():
                to.rmdir()  # empty (checked above)
            os.replace(staging, to)
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, SafetensorError):
            err = safetensors_os_error(err, staging)
        if isinstance(err, OSError):
            raise UserError(f"cannot write the export to {to}: {err.strerror or err}") from None
        raise
    return info


def _rebuild_fresh(run: RunDir, cfg, loaded, records, step: str | int, target: int) -> None:
    """A freshly loaded model (theta_0) brought to step ``target``: a replay of the log, or
    a first-order run's checkpointed tensors."""
    if not cfg.mechanism_type.replayable:  # the checkpointed tensors
        load_named(loaded.trainable, _first_order_tensors(run, step, target))
    else:
        replay(estimator_for(cfg, loaded), records[:target], cfg.zo.directions)


def released_into(run_path: str | Path, cfg, loaded, name: str = "best") -> None:
    """A run's released model (``name``: its dev-best or final step) into a freshly loaded
    one: its tensors file, or a replay of the log when the run wrote none
    (train.checkpoints none, or deleted)."""
    run = RunDir(Path(run_path))
    if run.tensors_step(name) is not None:
        load_named(loaded.trainable, run.load_tensors(name))
        return
    verified = run.verify(private=False)
    target = _export_step(run, name, len(verified.records), verified.metrics)
    _rebuild_fresh(run, cfg, loaded, verified.records, name, target)


def _staging_prefix(to: Path) -> str:
    """The export is staged beside its target, in a folder named after it and this process."""
    return f".{to.name}.export-"


def _remove_stale_staging(to: Path) -> None:
    """Staging folders of exports to ``to`` whose process is gone (a SIGKILL leaves one)."""
    for entry in to.parent.glob(f"{_staging_prefix(to)}*"):
        pid = entry.name.removeprefix(_staging_prefix(to)).split("-")[0]
        if entry.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _first_order_tensors(run: RunDir, step: str | int, target: int) -> dict[str, Any]:
    """A first-order run's tensors at ``target``: the dev-best or final file, else the
    checkpoint of that step (one line if there is none)."""
    for name in ("best", "final") if step in ("best", "final") else ():
        if run.tensors_step(name) == target:
            return run.load_tensors(name)
    found, tensors = run.load_checkpoint(at_most=target)
    if tensors is None or found != target:
        raise UserError(not_replayable(run.path, target))
    return tensors


def _check_export_target(to: Path) -> None:
    if to.exists() and not to.is_dir():
        raise UserError(f"export target {to} is a file; choose another --to")
    if to.exists() and any(to.iterdir()):
        raise UserError(f"export target {to} is not empty; choose another --to")
    for parent in Path(os.path.abspath(to)).parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"cannot create export target {to}: {parent} is a file")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UserError(f"cannot create export target {to}: {parent} is not writable")
            break


def _export_step(run: RunDir, step: str | int, logged: int, metrics: list[dict]) -> int:
    if step == "final":
        return logged
    if step == "best":
        dev = [m for m in metrics if m["split"] == "dev" and m["step"] <= logged]
        if not dev:
            raise UserError(f"{run.path} has no dev evaluation; use --step final or a number")
        metric = "f1" if "f1" in dev[0] else "accuracy"
        best = None
        for line in dev:  # the trainer's rule: a tie in the metric goes to the lower loss
            if better_dev(line, best, metric):
                best = line
        return best["step"]
    try:
        number = int(step)
    except ValueError:
        raise UserError(f"--step must be best, final or a step number, got '{step}'") from None
    if not 0 <= number <= logged:
        raise UserError(f"--step {number} is outside the logged steps 0..{logged}")
    return number
