"""`paczero bench --nproc G`: one process with G threads against G processes with one
thread each (torch.distributed, gloo on CPU), on the same full-pool steps.

Each layout runs in fresh subprocesses (``python -m paczero.bench.parallel``, under
torchrun for G > 1) so that thread pools and memory start equal. Rank 0 reports the median
step time, the share of it spent in collectives (the all-reduce of the per-example losses
and the broadcasts of the release), and the bytes they moved.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any


def _worker(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    import paczero.distributed as dist
    from paczero.bench.arguments import bench_config, quick_defaults
    from paczero.distributed import SOLO, World, init_world
    from paczero.privacy.randomness import RandomStream
    from paczero.session import build_session, pool_losses

    args = quick_defaults(args)
    torch.set_num_threads(args.threads_per_process)
    cfg = bench_config(args)
    world = init_world(cfg.model.device)
    comm = {"s": 0.0, "calls": 0}
    plain = dist._collective

    def timed(call):  # the bench's own clock on every collective
        t0 = time.perf_counter()
        try:
            return plain(call)
        finally:
            comm["s"] += time.perf_counter() - t0
            comm["calls"] += 1

    dist._collective = timed
    secret = RandomStream(0, "secret") if world.is_main else None
    s = build_session(cfg, secret, "bench", world)

    def losses(rows: np.ndarray, world: World = SOLO) -> torch.Tensor:
        return pool_losses(s.loaded.model, s.task, s.pool, rows, s.cfg.zo.micro_batch, world)

    steps, shares = [], []
    for repeat in range(args.warmup + args.repeats):
        comm["s"] = 0.0
        t0 = time.perf_counter()
        s.optimizer.step(losses, lr=1e-6)
        elapsed = time.perf_counter() - t0
        if repeat >= args.warmup:
            steps.append(elapsed)
            shares.append(comm["s"] / elapsed)
    tokens = sum(
        int(b.attention_mask.numel())
        for _, b in s.task.batches(s.pool, np.arange(len(s.pool)), s.cfg.zo.micro_batch)
    )
    dist.leave_together(world)
    return {
        "rank": world.rank,
        "processes": world.size,
        "threads_per_process": args.threads_per_process,
        "step_s": statistics.median(steps),
        "collective_share": statistics.median(shares) if world.size > 1 else 0.0,
        "padded_tokens_per_step": 2 * tokens * cfg.zo.directions,
        "tokens_per_s": 2 * tokens * cfg.zo.directions / statistics.median(steps),
        "pool": len(s.pool),
        "directions": cfg.zo.directions,
        "allreduce_bytes_per_step": 2 * cfg.zo.directions * 4 * len(s.pool) * (world.size > 1),
    }


def run_parallel_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Both layouts of ``args.nproc`` cores, in fresh subprocesses."""
    from paczero.errors import UserError

    forwarded = _forwarded(args)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    layouts = {}
    for processes, threads in ((1, args.nproc), (args.nproc, 1)):
        cmd = [sys.executable]
        if processes > 1:
            cmd += ["-m", "torch.distributed.run", "--standalone"]
            cmd += [f"--nproc_per_node={processes}"]
        cmd += ["-m", "paczero.bench.parallel", *forwarded, "--threads-per-process", str(threads)]
        run_env = {**env, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(cmd, env=run_env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"bench with {processes} process(es) failed: {tail}")
        reports = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
        layouts[f"{processes}x{threads}"] = next(r for r in reports if r["rank"] == 0)
    one, many = layouts[f"1x{args.nproc}"], layouts[f"{args.nproc}x1"]
    return {
        "layouts": layouts,
        "speedup_processes_over_threads": one["step_s"] / many["step_s"],
        "machine": {"cpus": os.cpu_count(), "cpu_flags": _cpu_flags()},
        "config": {k: v for k, v in vars(args).items() if k in _FORWARDED},
    }


_FORWARDED = ("model", "track", "pool", "mechanism", "subsets", "micro_batch", "repeats")
_FORWARDED += ("warmup", "quick", "dtype", "device")


def _forwarded(args: argparse.Namespace) -> list[str]:
    out = []
    for key in _FORWARDED:
        value = getattr(args, key, None)
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        out += [flag] if value is True else [flag, str(value)]
    for assignment in getattr(args, "overrides", []):
        out += ["--set", assignment]
    return out


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return []


def format_parallel(result: dict[str, Any]) -> str:
    lines = [f"{'layout':<22}{'step s':>9}{'tokens/s':>10}{'collectives':>13}{'bytes/step':>12}"]
    for r in result["layouts"].values():
        label = f"{r['processes']} proc x {r['threads_per_process']} thread(s)"
        lines.append(
            f"{label:<22}{r['step_s']:>9.3f}{r['tokens_per_s']:>10.0f}"
            f"{100 * r['collective_share']:>12.1f}%{r['allreduce_bytes_per_step']:>12}"
        )
    speedup = result["speedup_processes_over_threads"]
    lines.append(f"processes over threads: {speedup:.2f}x (step time ratio)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from paczero.bench.arguments import add_arguments
    from paczero.quiet import quiet_libraries

    parser = argparse.ArgumentParser(prog="python -m paczero.bench.parallel")
    add_arguments(parser)
    parser.add_argument("--threads-per-process", type=int, default=1)
    args = parser.parse_args(argv)
    quiet_libraries()
    print(json.dumps(_worker(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
