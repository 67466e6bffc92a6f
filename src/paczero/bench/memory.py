"""Peak memory of training and of inference: each phase in a fresh process (a peak is a
process-lifetime high-water mark), reset after the model is loaded so that the loading
transient does not hide the workload."""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from paczero.bench.measure import bench_session, sync
from paczero.engine.batch_budget import micro_batch_rows


def phase_argv(args: argparse.Namespace, phase: str) -> list[str]:
    argv = [sys.executable, "-m", "paczero.bench", "--phase", phase]
    argv += ["--model", args.model, "--track", args.track, "--pool", str(args.pool)]
    argv += ["--mechanism", args.mechanism, "--dtype", args.dtype, "--device", args.device]
    argv += ["--micro-batch", str(args.micro_batch), "--repeats", "2", "--warmup", "0"]
    if args.subsets:
        argv += ["--subsets", str(args.subsets)]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    if args.quick:
        argv.append("--quick")
    for assignment in args.overrides:
        argv += ["--set", assignment]
    return argv


def start_memory_phases(args: argparse.Namespace) -> dict[str, subprocess.Popen]:
    """Both phases at once: each is its own process, so their peaks cannot mix."""
    return {
        phase: subprocess.Popen(
            phase_argv(args, phase), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for phase in ("inference", "train")
    }


def finish_memory_phases(procs: dict[str, subprocess.Popen]) -> dict[str, dict]:
    out = {}
    for phase, proc in procs.items():
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            tail = stderr.strip().splitlines()[-1:] or ["no output"]
            out[phase] = {"error": f"exit {proc.returncode}: {tail[0]}"}
            continue
        out[phase] = json.loads(stdout.strip().splitlines()[-1])
    return out


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Linux: write 5 to clear_refs to restart VmHWM from the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def memory_phase(args: argparse.Namespace) -> dict:
    """One phase in a fresh process: inference (forward passes only) or training steps."""
    import numpy as np
    import torch

    from paczero.session import pool_losses

    s = bench_session(args)
    model, task, pool, device = s.loaded.model, s.task, s.pool, s.loaded.device
    rows = np.arange(len(pool))
    mb = micro_batch_rows(s.cfg.zo.micro_batch, s.cfg.zo.micro_batch_tokens, s.loaded.device)
    with torch.no_grad():  # page in mmapped weights, so the base is the loaded model
        for p in model.parameters():
            p.sum()
    gc.collect()
    load_peak = _peak_rss_bytes()
    reset = _reset_peak_rss()
    base = (_status_kib("VmRSS") or 0) * 1024
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)

    def losses(batch=rows) -> torch.Tensor:
        return pool_losses(model, task, pool, batch, mb)

    times = []
    for _ in range(args.warmup + args.repeats):
        t0 = time.perf_counter()
        if args.phase == "inference":
            losses()
        elif s.mechanism.first_order:  # dp-sgd, backprop
            s.optimizer.step_rows(rows, s.cfg.train.lr)
        else:
            s.optimizer.step(losses, rows, s.cfg.train.lr)
        sync(device)
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak, kind = torch.cuda.max_memory_allocated(device), "cuda-allocator"
    else:
        peak, kind = _peak_rss_bytes(), "rss" if reset else "rss-lifetime"
    return {
        "phase": args.phase,
        "peak_bytes": int(peak),
        "base_bytes": int(base),
        "load_peak_bytes": int(load_peak),
        "kind": kind,
        "step_s": statistics.median(times[args.warmup :]) if args.repeats else None,
    }
