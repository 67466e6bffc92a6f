"""`paczero bench`: what a step costs next to its floor, the two forward passes it cannot avoid.

Everything is timed in one process, after warm-up, interleaved repeat by repeat (floor,
step, perturbation, reference), so that a machine whose load drifts slows all of them
alike; the ratios are medians of per-repeat ratios. Peak memory comes from two fresh
subprocesses first (``paczero.bench.memory``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paczero.bench.arguments import check_args, quick_defaults, run_subsets
from paczero.bench.compute import achieved_compute, check_targets, machine_info
from paczero.bench.measure import bench_session, timed
from paczero.bench.memory import finish_memory_phases, memory_phase, start_memory_phases
from paczero.engine.batch_budget import micro_batch_rows

if TYPE_CHECKING:  # torch loads only when a bench runs: the CLI stays quick
    import numpy as np
    import torch


def load_reference():
    """The reference-style step ships in the package (``paczero.bench.reference_step``), so
    an installed wheel has it; None (the row is left out) if it cannot be imported."""
    try:
        return importlib.import_module("paczero.bench.reference_step")
    except ImportError:
        return None


def _tokens(task, encoded, indices: np.ndarray, micro_batch: int) -> tuple[int, int]:
    """(real tokens, padded tokens) of one pass over ``indices`` as the task batches them."""

    real = padded = 0
    for _, batch in task.batches(encoded, indices, micro_batch, device="cpu"):
        real += int(batch.attention_mask.sum())
        padded += int(batch.attention_mask.numel())
    return real, padded


class _Probes:
    """The session's forward passes and mechanism call, each timed where the step makes it,
    and the step's perturbation passes with the forwards removed."""

    def __init__(self, s: Any, rows: np.ndarray, micro_batch: int):
        import torch

        self.s, self.rows, self.micro_batch = s, rows, micro_batch
        self.forward_s: list[float] = []
        self.mechanism_s: list[float] = []
        self.zeros = torch.zeros(len(rows), dtype=torch.float32)
        self.perturb_seed = 10**9

    def losses(self, batch: np.ndarray | None = None) -> torch.Tensor:
        from paczero.session import pool_losses

        s = self.s
        batch = self.rows if batch is None else batch
        t0 = time.perf_counter()
        out = pool_losses(s.loaded.model, s.task, s.pool, batch, self.micro_batch)
        self.forward_s.append(time.perf_counter() - t0)
        return out

    @contextlib.contextmanager
    def timed_release(self):
        """The step's own call of the mechanism, timed in place."""
        release_step = self.s.mechanism.release_step

        def timed_release(derivatives, ctx):
            t0 = time.perf_counter()
            out = release_step(derivatives, ctx)
            self.mechanism_s.append(time.perf_counter() - t0)
            return out

        self.s.mechanism.release_step = timed_release
        try:
            yield
        finally:
            self.s.mechanism.release_step = release_step

    def perturbation(self) -> None:
        """The step's z passes (and snapshot/restore) exactly, with the forwards removed."""
        est, lr = self.s.optimizer.estimator, self.s.cfg.train.lr
        self.perturb_seed += 1
        est.estimate(self.perturb_seed, lambda: self.zeros, defer_restore=True)
        est.update([(self.perturb_seed, lr)])


def _reference(args: argparse.Namespace, s: Any, micro_batch: int):
    """The published-code-style step on the same pool, or None."""
    if not args.reference:
        return None
    module = load_reference()
    if module is None:
        return None
    return module.from_task(
        s.task,
        s.loaded.model,
        s.pool,
        [p for _, p in s.trainable],
        eps=s.cfg.zo.eps,
        lr=s.cfg.train.lr,
        micro_batch=micro_batch,
        subsets=run_subsets(s, args),
    )


def _samples(args: argparse.Namespace, s: Any, probes: _Probes, reference) -> dict:
    """Each kept repeat's floor, step (its forwards and mechanism), perturbation and
    reference times, interleaved so that a drifting load slows them alike."""
    device, rows, lr, opt = s.loaded.device, probes.rows, s.cfg.train.lr, s.optimizer
    samples: dict[str, list[float]] = {"floor": [], "step": [], "perturbation": []}
    samples.update({"mechanism": [], "step_forward": [], "reference": []})
    ref_seed = 0
    for repeat in range(args.warmup + args.repeats):
        keep = repeat >= args.warmup
        floor_s, _ = timed(lambda: (probes.losses(), probes.losses()), device)
        probes.forward_s.clear()
        probes.mechanism_s.clear()
        step_s, _ = timed(lambda: opt.step(probes.losses, rows, lr), device)
        step_forward, step_mechanism = sum(probes.forward_s), sum(probes.mechanism_s)
        perturb_s, _ = timed(probes.perturbation, device)
        ref_s = None
        if reference is not None and keep:  # slow, and the floor has warmed the kernels
            ref_seed += 1
            ref_s, _ = timed(lambda seed=ref_seed: reference.step(seed), device)
        if keep:
            samples["floor"].append(floor_s)
            samples["step"].append(step_s)
            samples["step_forward"].append(step_forward)
            samples["mechanism"].append(step_mechanism)
            samples["perturbation"].append(perturb_s)
            if ref_s is not None:
                samples["reference"].append(ref_s)
    return samples


def run_bench(args: argparse.Namespace) -> dict:
    """Time floor, step, perturbation, mechanism (and the reference); measure peak memory."""
    import numpy as np

    check_args(args)
    args = quick_defaults(args)
    if args.phase != "all":
        return memory_phase(args)
    # Memory first, both phases at once, and finished before any timing starts.
    memory = finish_memory_phases(start_memory_phases(args)) if args.memory else None
    s = bench_session(args)
    rows = np.arange(len(s.pool))
    mb = micro_batch_rows(s.cfg.zo.micro_batch, s.cfg.zo.micro_batch_tokens, s.loaded.device)
    probes = _Probes(s, rows, mb)
    with probes.timed_release():
        reference = _reference(args, s, mb)
        samples = _samples(args, s, probes, reference)
    result = _result(args, s, samples, mb, rows)
    if reference is not None:
        result["tokens"]["reference_padded_per_pass"] = reference.padded_tokens
    if memory is not None:
        result["memory"] = memory
        train, infer = result["memory"]["train"], result["memory"]["inference"]
        if train.get("peak_bytes") and infer.get("peak_bytes"):
            result["ratios"]["train_over_inference_memory"] = (
                train["peak_bytes"] / infer["peak_bytes"]
            )
    result["targets"] = check_targets(result)
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _result(args: argparse.Namespace, s: Any, samples: dict, mb: int, rows) -> dict[str, Any]:
    """The medians, the per-repeat ratios, the tokens and the compute of the samples."""
    model, task, pool, device = s.loaded.model, s.task, s.pool, s.loaded.device
    med = {k: statistics.median(v) for k, v in samples.items() if v}
    real, padded = _tokens(task, pool, rows, mb)
    ratios = {
        "step_over_floor": statistics.median(
            a / b for a, b in zip(samples["step"], samples["floor"], strict=True)
        )
    }
    if samples["reference"]:
        ratios["reference_over_step"] = statistics.median(
            r / a for r, a in zip(samples["reference"], samples["step"], strict=True)
        )
    result: dict[str, Any] = {
        "config": {
            "model": s.cfg.model.name,
            "track": s.cfg.model.track,
            "dtype": str(s.loaded.dtype).removeprefix("torch."),
            "device": str(device),
            "pool": len(pool),
            "mechanism": s.cfg.mechanism.name,
            "subsets": run_subsets(s, args),
            "micro_batch": mb,
            "micro_batch_tokens": task.max_batch_tokens,
            "restore": s.restore,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "trainable": s.loaded.num_trainable,
            "parameters": sum(p.numel() for p in model.parameters()),
            "sequences_per_example": task.sequences_per_example,
        },
        "machine": machine_info(device),
        "seconds": med,
        "samples": samples,
        "ratios": ratios,
        "tokens": {
            "pool_real": real,
            "pool_padded": padded,
            "step_per_s": 2 * real / med["step"],
            "floor_per_s": 2 * real / med["floor"],
        },
    }
    result["compute"] = achieved_compute(
        result["config"]["parameters"], real, med["floor"], med["step"], device, s.loaded.dtype
    )
    return result
