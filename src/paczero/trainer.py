"""The training loop: sample, estimate, release, log (write-ahead), update, evaluate."""

from __future__ import annotations

import math
import platform
import resource
import statistics
import sys
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
from paczero.mechanisms import build_mechanism
from paczero.models import load_model
from paczero.optim import StepResult, ZOOptimizer
from paczero.privacy.randomness import public_stream, secret_stream
from paczero.report import describe_result, privacy_report
from paczero.runs import RunDir, check_new_run_dir, default_run_dir
from paczero.tasks import build_task

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


def batch_indices(cfg: RunConfig, public, step: int, pool_size: int) -> np.ndarray:
    """Public minibatch (never depends on the secret); ``full`` = the whole pool."""
    size = cfg.train.batch_size
    if size == "full" or size >= pool_size:
        return np.arange(pool_size)
    rng = public.generator("batch", step)
    return np.sort(rng.choice(pool_size, size=size, replace=False))


def restore_mode(cfg: RunConfig, model, trainable) -> str:
    if cfg.zo.restore != "auto":
        return cfg.zo.restore
    total = sum(p.numel() for p in model.parameters())
    small = sum(p.numel() for _, p in trainable) <= LORA_EXACT_FRACTION * total
    return "exact" if small else "fused"


def train(
    config: RunConfig | dict | str | None = None,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
) -> Result:
    """Run one training run end to end and return its result (also in ``out/result.json``)."""
    cfg = _as_config(config, overrides)
    out_path = Path(out) if out is not None else default_run_dir(cfg)
    check_new_run_dir(out_path)
    started = time.perf_counter()

    public = public_stream(cfg.seed.public)
    secret, secret_source = secret_stream(cfg.seed.secret)
    splits = load_splits(cfg.task.name, cfg.data)
    loaded = load_model(cfg.model, seed=public.seed("model-init"))
    model, trainable = loaded.model, loaded.trainable
    task = build_task(cfg.task, loaded.tokenizer, device=loaded.device)
    pool, dev, test = (task.encode(part) for part in (splits.pool, splits.dev, splits.test))
    pool_size, steps = len(pool), cfg.train.steps
    mechanism = build_mechanism(
        cfg.mechanism, pool_size=pool_size, steps=steps, directions=cfg.zo.directions
    )
    restore = restore_mode(cfg, model, trainable)
    optimizer = ZOOptimizer(
        [p for _, p in trainable],
        mechanism,
        cfg.train.lr,
        cfg.zo.eps,
        directions=cfg.zo.directions,
        restore=restore,
        public=public,
        secret=secret,
    )

    run = RunDir.create(out_path, cfg)
    run.write_private("secret.json", {"root": secret.root, "source": secret_source})
    run.write_private("mechanism.json", mechanism.private_state_dict())
    setup_s = time.perf_counter() - started

    def evaluate(encoded) -> dict[str, float]:
        return task.evaluate(model, encoded, cfg.train.eval_batch)

    kinds: Counter[str] = Counter()
    unanimous: list[bool] = []
    step_times: list[float] = []
    best: dict[str, Any] = {"step": None, "dev": None}
    history: list[dict[str, Any]] = []
    eval_s = 0.0
    last_step = -1

    def evaluate_dev(step: int, metrics_log) -> None:
        nonlocal eval_s
        t0 = time.perf_counter()
        dev_metrics = evaluate(dev)
        eval_s += time.perf_counter() - t0
        metrics_log.append({"step": step, "split": "dev", **dev_metrics})
        history.append({"step": step, **dev_metrics})
        score = dev_metrics[task.metric]
        if best["dev"] is None or score > best["dev"][task.metric]:
            best.update(step=step, dev=dev_metrics)
            run.save_tensors("best", trainable)

    with (
        run.open_releases() as releases,
        run.open_private_releases() as private_log,
        run.open_metrics() as metrics_log,
    ):
        if cfg.train.eval_at_start or cfg.train.eval_every:
            evaluate_dev(0, metrics_log)

        def log_release(result: StepResult) -> None:
            releases.append(_release_record(result, mechanism))
            secret_values = [_jsonable(r.private) for r in result.releases]
            private_log.append({"step": result.step, "releases": secret_values})

        bar = tqdm(range(steps), desc=cfg.mechanism.name, disable=not progress, dynamic_ncols=True)
        for step in bar:
            t0 = time.perf_counter()
            indices = mechanism.batch(step)
            if indices is None:
                indices = batch_indices(cfg, public, step, pool_size)

            def losses(indices=indices) -> torch.Tensor:
                return pool_losses(model, task, pool, indices, cfg.zo.micro_batch)

            result = optimizer.step(losses, indices, learning_rate(cfg, step), log_release)
            outs, loss = result.releases, result.loss
            last_step = step
            step_times.append(time.perf_counter() - t0)

            kinds.update(o.kind for o in outs)
            unanimous.extend(bool(o.public["unanimous"]) for o in outs if "unanimous" in o.public)
            bar.set_postfix(_postfix(loss, unanimous, mechanism, best, task.metric), refresh=False)
            done = step + 1
            if cfg.train.eval_every and done % cfg.train.eval_every == 0 and done < steps:
                evaluate_dev(done, metrics_log)
            if mechanism.exhausted:
                break
        bar.close()
        steps_run = last_step + 1
        if not history or history[-1]["step"] != steps_run:
            evaluate_dev(steps_run, metrics_log)
        run.save_tensors("final", trainable)

        _load_named(trainable, run.load_tensors("best"))
        t0 = time.perf_counter()
        test_metrics = evaluate(test)
        eval_s += time.perf_counter() - t0
        metrics_log.append({"step": best["step"], "split": "test", **test_metrics})

    model_dir = run.path / "model"
    model.save_pretrained(model_dir)
    loaded.tokenizer.save_pretrained(model_dir)
    run.write_private("mechanism.json", mechanism.private_state_dict())

    total_s = time.perf_counter() - started
    result = {
        "config": cfg.model_dump(mode="json"),
        "metrics": {
            "metric": task.metric,
            "dev_best": best["dev"],
            "best_step": best["step"],
            "dev_history": history,
            "test": test_metrics,
            "splits": {"pool": len(pool), "dev": len(dev), "test": len(test)},
        },
        "privacy": privacy_report(
            cfg, mechanism, kinds, unanimous, secret_source, steps_run=steps_run
        ),
        "training": {
            "steps_run": steps_run,
            "steps_planned": steps,
            "stopped_early": steps_run < steps,
            "restore": restore,
            "trainable_parameters": int(sum(p.numel() for _, p in trainable)),
            "model_source": loaded.source,
        },
        "timing": {
            "total_s": round(total_s, 3),
            "setup_s": round(setup_s, 3),
            "eval_s": round(eval_s, 3),
            "train_s": round(sum(step_times), 3),
            "step_s_median": round(statistics.median(step_times), 4) if step_times else None,
        },
        "memory": _memory(),
        "versions": _versions(),
        "hardware": _hardware(loaded.device),
    }
    run.write_result(result)
    return Result(run_dir=run.path, data=result)


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
    outs = result.releases
    return {
        "step": result.step,
        "lr": result.lr,
        "seeds": result.seeds,
        "coeffs": result.coeffs,
        "kinds": [o.kind for o in outs],
        "charge": float(sum(o.charge for o in outs)),
        "cumulative": float(mechanism.spent().get("mi", 0.0)),
        "unanimous": [bool(o.public.get("unanimous", False)) for o in outs],
        "frac_plus": [o.public.get("frac_plus") for o in outs],
        "loss": result.loss if math.isfinite(result.loss) else None,  # None: empty batch
        "public": [_jsonable(o.public) for o in outs],
    }


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in fields.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        out[key] = value
    return out


def _postfix(loss, unanimous, mechanism, best, metric) -> dict[str, str]:
    post = {"loss": f"{loss:.4f}" if math.isfinite(loss) else "-"}
    if unanimous:
        post["unan"] = f"{100 * sum(unanimous) / max(len(unanimous), 1):.0f}%"
    if "mi" in mechanism.spent():
        post["mi"] = f"{mechanism.spent()['mi']:.4g}"
    if best["dev"] is not None:
        post[f"dev_{metric[:3]}"] = f"{best['dev'][metric]:.3f}"
    return post


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
    """Metrics of a run directory's dev-best model, or of a base model (zero-shot)."""
    run_config = Path(target) / "config.yaml"
    if run_config.exists():
        cfg = load_config(str(run_config), overrides)
    else:
        cfg = load_config(None, [f"model.name={target}", *overrides])
    public = public_stream(cfg.seed.public)
    splits = load_splits(cfg.task.name, cfg.data)
    loaded = load_model(cfg.model, seed=public.seed("model-init"))
    if run_config.exists():
        _load_named(loaded.trainable, RunDir(Path(target)).load_tensors("best"))
    task = build_task(cfg.task, loaded.tokenizer, device=loaded.device)
    encoded = task.encode(splits.test if split == "test" else splits.dev)
    metrics = task.evaluate(loaded.model, encoded, cfg.train.eval_batch)
    return {**metrics, "examples": len(encoded), "split": split}
