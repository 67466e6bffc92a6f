"""The training loop: sample, estimate, release, log (write-ahead), update, evaluate."""

from __future__ import annotations

import contextlib
import json
import math
import platform
import resource
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from paczero.config import RunConfig, load_config, validate_config
from paczero.data import load_splits
from paczero.errors import Interrupted, UserError
from paczero.mechanisms import build_mechanism
from paczero.models import load_model
from paczero.optim import StepResult, ZOOptimizer
from paczero.privacy.randomness import RandomStream, public_stream, secret_stream
from paczero.report import describe_result, privacy_report
from paczero.runs import RunDir, check_new_run_dir, default_run_dir, open_run
from paczero.tasks import build_task
from paczero.zo import ZOEstimator

LORA_EXACT_FRACTION = 0.05  # snapshot-restore when the trainable set is this small


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


def pool_losses(model, task, encoded, indices: np.ndarray, micro_batch: int) -> torch.Tensor:
    """Per-example losses of the given rows, in the order of ``indices``."""
    out = torch.empty(len(indices), dtype=torch.float32)
    for positions, batch in task.batches(encoded, indices, micro_batch):
        out[torch.as_tensor(positions)] = task.losses(model, batch).float().cpu()
    return out


def learning_rate(cfg: RunConfig, step: int) -> float:
    if cfg.train.schedule == "linear":
        return cfg.train.lr * (1.0 - step / cfg.train.steps)
    return cfg.train.lr


def restore_mode(cfg: RunConfig, model, trainable) -> str:
    if cfg.zo.restore != "auto":
        return cfg.zo.restore
    total = sum(p.numel() for p in model.parameters())
    small = sum(p.numel() for _, p in trainable) <= LORA_EXACT_FRACTION * total
    return "exact" if small else "fused"


@dataclass
class Session:
    """Everything a run builds from its config (and its secret stream)."""

    cfg: RunConfig
    public: RandomStream
    secret: RandomStream
    secret_source: str
    loaded: Any
    task: Any
    pool: Any
    dev: Any
    test: Any
    provenance: str
    mechanism: Any
    optimizer: ZOOptimizer
    restore: str

    @property
    def trainable(self) -> list[tuple[str, torch.Tensor]]:
        return self.loaded.trainable


CPU_BATCH_TOKENS = 512  # measured on SmolLM2: pool 32 x1.5, pool 128 x1.1 faster than no cap


def build_task_for(cfg: RunConfig, loaded):
    """The run's task, batching for the model's device (``zo.micro_batch_tokens``)."""
    budget = cfg.zo.micro_batch_tokens
    if budget == "auto":
        budget = CPU_BATCH_TOKENS if loaded.device.type == "cpu" else None
    elif budget == "off":
        budget = None
    return build_task(cfg.task, loaded.tokenizer, device=loaded.device, max_batch_tokens=budget)


def build_session(cfg: RunConfig, secret: RandomStream, secret_source: str) -> Session:
    public = public_stream(cfg.seed.public)
    splits = load_splits(cfg.task.name, cfg.data)
    loaded = load_model(cfg.model, seed=public.seed("model-init"))
    task = build_task_for(cfg, loaded)
    pool, dev, test = (task.encode(part) for part in (splits.pool, splits.dev, splits.test))
    mechanism = build_mechanism(
        cfg.mechanism, pool_size=len(pool), steps=cfg.train.steps, directions=cfg.zo.directions
    )
    restore = restore_mode(cfg, loaded.model, loaded.trainable)
    optimizer = ZOOptimizer(
        [p for _, p in loaded.trainable],
        mechanism,
        cfg.train.lr,
        cfg.zo.eps,
        directions=cfg.zo.directions,
        batch_size=None if cfg.train.batch_size == "full" else cfg.train.batch_size,
        restore=restore,
        public=public,
        secret=secret,
    )
    provenance = getattr(splits, "provenance", "official")
    return Session(
        cfg, public, secret, secret_source, loaded, task, pool, dev, test, provenance,
        mechanism, optimizer, restore,
    )  # fmt: skip


def train(
    config: RunConfig | dict | str | None = None,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
) -> Result:
    """Run one training run end to end and return its result (also in ``out/result.json``)."""
    started = time.perf_counter()
    cfg = _as_config(config, overrides)
    out_path = Path(out) if out is not None else default_run_dir(cfg)
    check_new_run_dir(out_path)
    secret, secret_source = secret_stream(cfg.seed.secret)
    session = build_session(cfg, secret, secret_source)

    run = RunDir.create(out_path, cfg)
    run.write_private(
        "secret.json", {"root": secret.root, "source": secret_source, "run_id": run.run_id()}
    )
    run.write_private("mechanism.json", session.mechanism.private_state_dict())
    trainer = Trainer(session, run, progress, started)
    trainer.save_checkpoint(0)  # theta_0: every later state is a checkpoint plus a replay
    return trainer.run()


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
    secret = RandomStream(int(info["root"]), "secret")
    session = build_session(cfg, secret, info["source"])
    trainer = Trainer(session, run, progress, started)
    trainer.restore_from_log()
    return trainer.run()


class Trainer:
    """The loop and its bookkeeping; ``restore_from_log`` rebuilds it for a resume."""

    keep_checkpoints = 3

    def __init__(self, session: Session, run: RunDir, progress: bool, started: float):
        self.s = session
        self.run_dir = run
        self.progress = progress
        self.started = started
        self.kinds: Counter[str] = Counter()
        self.unanimous: list[bool] = []
        self.step_times: list[float] = []
        self.best: dict[str, Any] = {"step": None, "dev": None}
        self.history: list[dict[str, Any]] = []
        self.eval_s = 0.0
        self.next_step = 0
        self.resumed_from: int | None = None
        self._signal: int | None = None

    # ------------------------------------------------------------ the loop

    def run(self) -> Result:
        s, cfg = self.s, self.s.cfg
        setup_s = time.perf_counter() - self.started
        with (
            self.run_dir.open_releases() as releases,
            self.run_dir.open_private_releases() as private_log,
            self.run_dir.open_metrics() as metrics_log,
            self._signals(),
        ):
            self.releases_log, self.private_log = releases, private_log
            self.metrics_log = metrics_log
            fresh = self.next_step == 0 and not self.history
            if fresh and (cfg.train.eval_at_start or cfg.train.eval_every):
                self.evaluate_dev(0)
            bar = tqdm(
                range(self.next_step, cfg.train.steps),
                initial=self.next_step,
                total=cfg.train.steps,
                desc=cfg.mechanism.name,
                disable=not self.progress,
                dynamic_ncols=True,
            )
            for step in bar:
                if s.mechanism.exhausted:
                    break
                t0 = time.perf_counter()
                result = self.step(step)
                self.step_times.append(time.perf_counter() - t0)
                self.next_step = step + 1
                self._account(result.releases)
                bar.set_postfix(self._postfix(result), refresh=False)
                self.after_step(self.next_step)
            bar.close()
            return self.finish(setup_s)

    def step(self, step: int) -> StepResult:
        """One step; the optimizer picks its rows (the mechanism's or a public minibatch)."""
        s = self.s

        def losses(rows: np.ndarray) -> torch.Tensor:
            return pool_losses(s.loaded.model, s.task, s.pool, rows, s.cfg.zo.micro_batch)

        lr = learning_rate(s.cfg, step)
        return s.optimizer.step(losses, lr=lr, before_update=self.log_release)

    def log_release(self, result: StepResult) -> None:
        """Write-ahead, private record first: a crash between the two writes leaves the
        private log one record ahead, which resume drops (that release was never public
        nor applied); the public log is never ahead of the private one."""
        self.private_log.append(_private_record(result))
        self.releases_log.append(_release_record(result, self.s.mechanism))

    def after_step(self, done: int) -> None:
        train = self.s.cfg.train
        if train.eval_every and done % train.eval_every == 0 and done < train.steps:
            self.evaluate_dev(done)
        if train.checkpoint_every and done % train.checkpoint_every == 0:
            self.save_checkpoint(done)
        if self._signal is not None:
            self.save_checkpoint(done)
            raise Interrupted(self.run_dir.path, done, self._signal)

    def finish(self, setup_s: float) -> Result:
        s, run = self.s, self.run_dir
        steps_run = self.next_step
        if not self.history or self.history[-1]["step"] != steps_run:
            self.evaluate_dev(steps_run)
        self.save_checkpoint(steps_run)
        run.save_tensors("final", s.trainable, step=steps_run)
        _load_named(s.trainable, run.load_tensors("best"))
        t0 = time.perf_counter()
        test_metrics = s.task.evaluate(s.loaded.model, s.test, s.cfg.train.eval_batch)
        self.eval_s += time.perf_counter() - t0
        self.metrics_log.append({"step": self.best["step"], "split": "test", **test_metrics})
        model_dir = run.path / "model"
        s.loaded.model.save_pretrained(model_dir)
        s.loaded.tokenizer.save_pretrained(model_dir)
        result = self.result(test_metrics, steps_run, setup_s)
        run.write_result(result)
        return Result(run_dir=run.path, data=result)

    # ------------------------------------------------------------ pieces

    def evaluate_dev(self, step: int) -> None:
        s = self.s
        t0 = time.perf_counter()
        dev_metrics = s.task.evaluate(s.loaded.model, s.dev, s.cfg.train.eval_batch)
        self.eval_s += time.perf_counter() - t0
        score = dev_metrics[s.task.metric]
        if self.best["dev"] is None or score > self.best["dev"][s.task.metric]:
            self.best.update(step=step, dev=dev_metrics)
            self.run_dir.save_tensors("best", s.trainable, step=step)  # before the log line
        self.metrics_log.append({"step": step, "split": "dev", **dev_metrics})
        self.history.append({"step": step, **dev_metrics})

    def save_checkpoint(self, step: int) -> None:
        s = self.s
        state = {
            "next_lr": learning_rate(s.cfg, step) if step < s.cfg.train.steps else None,
            "public_seed": s.cfg.seed.public,  # draws are keyed by (seed, step): no RNG state
            "mechanism": s.mechanism.state_dict(),
        }
        self.run_dir.save_checkpoint(step, s.trainable, keep=self.keep_checkpoints, state=state)

    def _account(self, releases) -> None:
        self.kinds.update(r.kind for r in releases)
        self.unanimous.extend(
            bool(r.public["unanimous"]) for r in releases if "unanimous" in r.public
        )

    def _postfix(self, result: StepResult) -> dict[str, str]:
        """What the bar shows: public values only. A step on secret rows (DP sampling) shows
        the dev loss of the last evaluation instead of its own loss."""
        if result.rows_secret:
            last = self.history[-1].get("loss") if self.history else None
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
            post[f"dev_{metric[:3]}"] = f"{self.best['dev'][metric]:.3f}"
        return post

    @contextlib.contextmanager
    def _signals(self):
        """SIGINT/SIGTERM finish the current step, checkpoint, then stop (a second one kills)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            self._signal = signum
            signal.signal(signum, signal.SIG_DFL)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    # ------------------------------------------------------------ resume

    def restore_from_log(self) -> None:
        """Theta, mechanism state and bookkeeping at the end of the release log."""
        s, run = self.s, self.run_dir
        records = run.releases(repair=True)
        done = len(records)
        if [r["step"] for r in records] != list(range(done)):
            raise UserError(f"{run.path}/releases.jsonl is not a gap-free step sequence")
        self.rebuild(done, records)
        if records:
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
        self.next_step = done
        self.resumed_from = done
        for record in records:
            self.kinds.update(record["kinds"])
            self.unanimous.extend(
                bool(p["unanimous"]) for p in record["public"] if "unanimous" in p
            )
        for line in run.metrics(repair=True):
            if line["split"] == "dev" and line["step"] <= done:
                metrics = {k: v for k, v in line.items() if k not in ("step", "split")}
                self.history.append({"step": line["step"], **metrics})
                if self.best["dev"] is None or (
                    metrics[s.task.metric] > self.best["dev"][s.task.metric]
                ):
                    self.best.update(step=line["step"], dev=metrics)
        if self.best["step"] is not None and run.tensors_step("best") != self.best["step"]:
            current = [(n, p.detach().clone()) for n, p in s.trainable]
            self.rebuild(self.best["step"], records)
            run.save_tensors("best", s.trainable, step=self.best["step"])
            _load_named(s.trainable, dict(current))
        self.metrics_log = run.open_metrics()
        try:
            cfg = s.cfg.train
            due = done and cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps
            if due and (not self.history or self.history[-1]["step"] != done):
                self.evaluate_dev(done)  # the eval the kill interrupted
        finally:
            self.metrics_log.close()

    def rebuild(self, step: int, records: list[dict[str, Any]]) -> None:
        """Trainable tensors after ``step`` steps: newest checkpoint <= step, then replay."""
        s = self.s
        start, tensors = self.run_dir.load_checkpoint(at_most=step)
        if tensors is not None:
            _load_named(s.trainable, tensors)
        replay(s.optimizer.estimator, records[start:step], s.cfg.zo.directions)

    def result(self, test_metrics, steps_run: int, setup_s: float) -> dict[str, Any]:
        s, cfg = self.s, self.s.cfg
        total_s = time.perf_counter() - self.started
        times = self.step_times
        return {
            "config": cfg.public_dict(),
            "metrics": {
                "metric": s.task.metric,
                "dev_best": self.best["dev"],
                "best_step": self.best["step"],
                "dev_history": self.history,
                "test": test_metrics,
                "splits": {
                    "pool": len(s.pool),
                    "dev": len(s.dev),
                    "test": len(s.test),
                    "provenance": s.provenance,
                },
            },
            "privacy": privacy_report(
                cfg, s.mechanism, self.kinds, self.unanimous, s.secret_source, steps_run
            ),
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
            "memory": _memory(),
            "versions": _versions(),
            "hardware": _hardware(s.loaded.device),
        }


def replay(estimator, records: list[dict[str, Any]], directions: int) -> None:
    """Apply logged steps to theta without a forward pass (the same float operations)."""
    for record in records:
        amounts = [record["lr"] * c / directions for c in record["coeffs"]]
        estimator.replay(record["seeds"], amounts)


def export(run_path: str | Path, to: str | Path, step: str | int = "best") -> dict[str, Any]:
    """Rebuild a run's model from the base model and the release log alone, and save it.

    ``step``: ``best`` (the dev-best step), ``final``, or a step number. Writes a PEFT
    adapter (LoRA) or a full HF model directory, with the tokenizer.
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
    loaded.model.save_pretrained(to)
    loaded.tokenizer.save_pretrained(to)
    info = {"run": str(run.path), "step": target, "base_model": cfg.model.name}
    info["track"] = cfg.model.track
    (to / "paczero_export.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


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


def _as_config(config, overrides) -> RunConfig:
    if isinstance(config, RunConfig):
        if not overrides:
            return config
        config = config.model_dump(mode="json")
    if isinstance(config, dict):
        from paczero.config import apply_override

        data = dict(config)
        for assignment in overrides:
            apply_override(data, assignment)
        return validate_config(data)
    return load_config(config, overrides)


def _release_record(result: StepResult, mechanism) -> dict[str, Any]:
    """The public line of a step: public inputs and what the mechanism released, nothing
    else. The loss estimate is public only when the rows are (the pool is known to the
    PACZero attacker); on secret rows (a DP Poisson sample) it stays in private/."""
    outs = result.releases
    spent = mechanism.spent()
    record = {
        "step": result.step,
        "lr": result.lr,
        "seeds": result.seeds,
        "coeffs": result.coeffs,
        "kinds": [o.kind for o in outs],
        "charge": float(sum(o.charge for o in outs)),
        "cumulative": float(spent.get("charged", 0.0)),
        "unanimous": [bool(o.public.get("unanimous", False)) for o in outs],
        "frac_plus": [o.public.get("frac_plus") for o in outs],
        "public": [_jsonable(o.public) for o in outs],
        "state": mechanism.state_dict(),  # public: the posterior and spend after this step
    }
    if not result.rows_secret:
        record["loss"] = result.loss
    if "epsilon" in spent:  # DP: epsilon spent so far (data-independent, so public)
        record["epsilon"] = float(spent["epsilon"])
    return record


def _private_record(result: StepResult) -> dict[str, Any]:
    """The secret side of a step: S*-dependent values and noise of every release and,
    for secret rows, the rows' loss and count."""
    record: dict[str, Any] = {
        "step": result.step,
        "releases": [_jsonable(r.private) for r in result.releases],
    }
    if result.rows_secret:
        loss = result.loss if math.isfinite(result.loss) else None  # None: an empty sample
        record.update(loss=loss, batch_size=len(result.rows))
    return record


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in fields.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        out[key] = value
    return out


@torch.no_grad()
def _load_named(trainable, tensors: dict[str, torch.Tensor]) -> None:
    for name, param in trainable:
        param.copy_(tensors[name].to(param.device, param.dtype))


def _memory() -> dict[str, Any]:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out: dict[str, Any] = {"peak_rss_mb": round(peak_kb / 1024, 1)}
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _versions() -> dict[str, str]:
    names = ("torch", "transformers", "peft", "paczero")
    versions = {"python": sys.version.split()[0]}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _hardware(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def evaluate(
    target: str | Path, split: str = "test", overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Metrics of a run's dev-best model, an exported model, or a base model (zero-shot)."""
    target = Path(target)
    run_config, exported = target / "config.yaml", target / "paczero_export.json"
    if run_config.exists():
        cfg = load_config(str(run_config), overrides)
    elif exported.exists():
        info = json.loads(exported.read_text())
        base = info["base_model"] if info["track"] == "lora" else str(target)
        cfg = load_config(None, [f"model.name={base}", "model.track=full", *overrides])
    else:
        cfg = load_config(None, [f"model.name={target}", *overrides])
    public = public_stream(cfg.seed.public)
    splits = load_splits(cfg.task.name, cfg.data)
    loaded = load_model(cfg.model, seed=public.seed("model-init"))
    model = loaded.model
    if run_config.exists():
        _load_named(loaded.trainable, RunDir(target).load_tensors("best"))
    elif exported.exists() and info["track"] == "lora":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, target)
    task = build_task_for(cfg, loaded)
    encoded = task.encode(splits.test if split == "test" else splits.dev)
    metrics = task.evaluate(model, encoded, cfg.train.eval_batch)
    return {**metrics, "examples": len(encoded), "split": split}
