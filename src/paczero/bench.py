"""`paczero bench`: what a step costs next to its floor, the two forward passes it cannot avoid.

Everything is timed in one process, after warm-up, interleaved repeat by repeat (floor,
step, perturbation, reference), so that a machine whose load drifts slows all of them
alike; the ratios are medians of per-repeat ratios. Peak memory is a process-lifetime
high-water mark, so training and inference peaks come from two fresh subprocesses
(``python -m paczero.bench --phase ...``) with the same micro-batch size, each reset
after the model is loaded so that the loading transient does not hide the workload.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paczero.batch_budget import micro_batch_rows

if TYPE_CHECKING:  # torch loads only when a bench runs: the CLI stays quick
    import numpy as np
    import torch

TARGETS = {
    "step_over_floor": {"lora": 1.10, "full": 1.35},
    "train_over_inference_memory": 1.15,
    "reference_over_step": 2.5,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="smollm2-135m", help="alias, path or hub id")
    parser.add_argument("--track", choices=("lora", "full"), default="lora")
    parser.add_argument("--pool", type=int, default=128, help="pool size N (one step = all N)")
    parser.add_argument("--mechanism", default="paczero-zpl")
    parser.add_argument("--subsets", type=int, default=None, help="M (default min(128, N))")
    parser.add_argument(
        "--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--micro-batch", type=int, default=32, help="sequences per forward")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (medians)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repeats first")
    parser.add_argument(
        "--reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the published-code-style step (paczero.reference_step)",
    )
    parser.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure peak memory of training and inference in two subprocesses",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="G > 1: compare 1 process x G threads with G processes x 1 thread (torchrun)",
    )
    parser.add_argument(
        "--compare",
        choices=("dp-sgd", "backprop"),
        default=None,
        help="one step of --mechanism vs this first-order baseline over the same pool: "
        "peak memory and time, each in its own process",
    )
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    parser.add_argument("--json", dest="json_path", metavar="PATH", help="also write JSON here")
    parser.add_argument(
        "--quick", action="store_true", help="tiny random model, synthetic data, few repeats"
    )
    parser.add_argument(
        "--phase", choices=("all", "inference", "train"), default="all", help=argparse.SUPPRESS
    )


def run_subsets(s: Any, args: argparse.Namespace) -> int:
    """M of the session's mechanism (the bench's own M for one without candidate subsets:
    the reference step still draws them)."""
    return s.cfg.mechanism.subsets if s.mechanism.uses_subsets else bench_subsets(args)


def bench_config(args: argparse.Namespace):
    """The run config the bench measures: the trainer's own code path, full-pool steps."""
    from paczero.config import load_config
    from paczero.mechanisms import REGISTRY

    model = "tiny-llama" if args.quick and args.model == "smollm2-135m" else args.model
    mechanism: dict[str, Any] = {"name": args.mechanism}
    cls = REGISTRY.get(args.mechanism)  # an unknown name is refused by load_config
    if cls is not None and cls.uses_subsets:
        mechanism["subsets"] = bench_subsets(args)
    data: dict[str, Any] = {
        "model": {"name": model, "dtype": args.dtype, "device": args.device, "track": args.track},
        "task": {"name": "sst2"},
        "data": {"num_train": args.pool, "num_dev": 1, "num_test": 1},
        "zo": {"micro_batch": args.micro_batch},
        "train": {"steps": 1000, "lr": 1e-6, "batch_size": "full", "eval_at_start": False},
        "mechanism": mechanism,
        "seed": {"public": 0},
    }
    if args.quick:
        data["data"]["source"] = "synthetic"
    return load_config(data, args.overrides)


def bench_subsets(args: argparse.Namespace) -> int:
    """M of the measured mechanism (and of the reference step, whatever the mechanism)."""
    return args.subsets or min(128, args.pool - args.pool % 2)


def check_args(args: argparse.Namespace) -> None:
    """Every option (``options.BenchArgs``) and the run config they build, checked before
    anything runs or any subprocess starts: a refusal is one line."""
    from paczero.options import BenchArgs, validate_options

    validate_options(BenchArgs, vars(args))
    bench_config(_quick_defaults(args))


def _quick_defaults(args: argparse.Namespace) -> argparse.Namespace:
    if not args.quick:
        return args
    args = argparse.Namespace(**vars(args))
    defaults = {"pool": 128, "micro_batch": 32, "repeats": 5, "threads": None}
    # One thread: a tiny model spends more time in thread hand-offs than in maths.
    quick = {"pool": 16, "micro_batch": 8, "repeats": 2, "threads": 1}
    for key, value in quick.items():
        if getattr(args, key) == defaults[key]:
            setattr(args, key, value)
    return args


def _session(args: argparse.Namespace):
    import torch

    from paczero.privacy.randomness import RandomStream
    from paczero.session import build_session

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = bench_config(args)
    # A fixed secret root: the bench releases nothing, and a seeded secret_stream would warn.
    return build_session(cfg, RandomStream(0, "secret"), "bench")


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> tuple[float, Any]:

    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def _load_reference():
    """The reference-style step ships in the package (``paczero.reference_step``), so an
    installed wheel has it; None (the row is left out) if it cannot be imported."""
    try:
        return importlib.import_module("paczero.reference_step")
    except ImportError:
        return None


def _tokens(task, encoded, indices: np.ndarray, micro_batch: int) -> tuple[int, int]:
    """(real tokens, padded tokens) of one pass over ``indices`` as the task batches them."""

    real = padded = 0
    for _, batch in task.batches(encoded, indices, micro_batch, device="cpu"):
        real += int(batch.attention_mask.sum())
        padded += int(batch.attention_mask.numel())
    return real, padded


def run_bench(args: argparse.Namespace) -> dict:
    """Time floor, step, perturbation, mechanism (and the reference); measure peak memory."""
    import numpy as np
    import torch

    check_args(args)
    args = _quick_defaults(args)
    if args.phase != "all":
        return _memory_phase(args)
    from paczero.session import pool_losses

    # Memory first, both phases at once, and finished before any timing starts.
    memory = _finish_memory_phases(_start_memory_phases(args)) if args.memory else None
    s = _session(args)
    model, task, pool, device = s.loaded.model, s.task, s.pool, s.loaded.device
    rows = np.arange(len(pool))
    mb = micro_batch_rows(s.cfg.zo.micro_batch, s.cfg.zo.micro_batch_tokens, s.loaded.device)
    lr = s.cfg.train.lr
    opt, est = s.optimizer, s.optimizer.estimator

    forward_s: list[float] = []

    def losses(batch: np.ndarray = rows) -> torch.Tensor:
        t0 = time.perf_counter()
        out = pool_losses(model, task, pool, batch, mb)
        forward_s.append(time.perf_counter() - t0)
        return out

    mechanism_s: list[float] = []
    release_step = s.mechanism.release_step

    def timed_release(derivatives, ctx):
        t0 = time.perf_counter()
        out = release_step(derivatives, ctx)
        mechanism_s.append(time.perf_counter() - t0)
        return out

    s.mechanism.release_step = timed_release  # the step's own call, timed in place

    zeros = torch.zeros(len(rows), dtype=torch.float32)
    perturb_seed = [10**9]

    def perturbation() -> None:
        """The step's z passes (and snapshot/restore) exactly, with the forwards removed."""
        perturb_seed[0] += 1
        est.estimate(perturb_seed[0], lambda: zeros, defer_restore=True)
        est.update([(perturb_seed[0], lr)])

    reference = None
    if args.reference:
        module = _load_reference()
        if module is not None:
            reference = module.from_task(
                task,
                model,
                pool,
                [p for _, p in s.trainable],
                eps=s.cfg.zo.eps,
                lr=lr,
                micro_batch=mb,
                subsets=run_subsets(s, args),
            )

    samples: dict[str, list[float]] = {"floor": [], "step": [], "perturbation": []}
    samples.update({"mechanism": [], "step_forward": [], "reference": []})
    ref_seed = 0
    for repeat in range(args.warmup + args.repeats):
        keep = repeat >= args.warmup
        floor_s, _ = _timed(lambda: (losses(), losses()), device)
        forward_s.clear()
        mechanism_s.clear()
        step_s, _ = _timed(lambda: opt.step(losses, rows, lr), device)
        step_forward, step_mechanism = sum(forward_s), sum(mechanism_s)
        perturb_s, _ = _timed(perturbation, device)
        ref_s = None
        if reference is not None and keep:  # slow, and the floor has warmed the kernels
            ref_seed += 1
            ref_s, _ = _timed(lambda seed=ref_seed: reference.step(seed), device)
        if keep:
            samples["floor"].append(floor_s)
            samples["step"].append(step_s)
            samples["step_forward"].append(step_forward)
            samples["mechanism"].append(step_mechanism)
            samples["perturbation"].append(perturb_s)
            if ref_s is not None:
                samples["reference"].append(ref_s)
    s.mechanism.release_step = release_step

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
    if reference is not None:
        result["tokens"]["reference_padded_per_pass"] = reference.padded_tokens
    if memory is not None:
        result["memory"] = memory
        train, infer = result["memory"]["train"], result["memory"]["inference"]
        if train.get("peak_bytes") and infer.get("peak_bytes"):
            ratios["train_over_inference_memory"] = train["peak_bytes"] / infer["peak_bytes"]
    result["targets"] = check_targets(result)
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return result


PROBE_SIZE = {"cpu": 1024, "cuda": 8192}  # square matmul side of the peak probe


def forward_flops(parameters: int, real_tokens: int) -> float:
    """FLOP of one forward pass: 2 x parameters per real token (multiply and add)."""
    return 2.0 * parameters * real_tokens


def tflops(flop: float, seconds: float) -> float:
    return flop / seconds / 1e12


def matmul_peak_tflops(device, dtype, size: int | None = None, repeats: int = 3) -> float:
    """The device's attainable dense rate in ``dtype``: the best of a few square matmuls."""
    import torch

    kind = torch.device(device).type
    n = size or PROBE_SIZE.get(kind, 4096)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    _timed(lambda: a @ b, torch.device(device))  # warm-up (kernels, clocks)
    best = min(_timed(lambda: a @ b, torch.device(device))[0] for _ in range(repeats))
    return tflops(2.0 * n**3, best)


def achieved_compute(parameters, real_tokens, floor_s, step_s, device, dtype) -> dict[str, Any]:
    """Achieved TFLOP/s of the floor and the step (2 forward passes over the pool's real
    tokens) beside the peak a matmul probe reaches on the same device and dtype."""
    flop = 2 * forward_flops(parameters, real_tokens)
    peak = matmul_peak_tflops(device, dtype)
    floor, step = tflops(flop, floor_s), tflops(flop, step_s)
    return {
        "flop_per_step": flop,
        "floor_tflops": floor,
        "step_tflops": step,
        "peak_tflops_probe": peak,
        "probe": f"{PROBE_SIZE.get(torch_kind(device), 4096)}^2 matmul, {dtype}",
        "floor_fraction_of_peak": floor / peak,
        "step_fraction_of_peak": step / peak,
    }


def torch_kind(device) -> str:
    return getattr(device, "type", str(device).split(":")[0])


def check_targets(result: dict) -> dict[str, dict[str, Any]]:
    """Each target with its value and whether it holds (the issue's figures, CPU or GPU)."""
    ratios, track = result["ratios"], result["config"]["track"]
    out: dict[str, dict[str, Any]] = {}
    limit = TARGETS["step_over_floor"][track]
    out["step_over_floor"] = _target(ratios.get("step_over_floor"), "<=", limit)
    out["train_over_inference_memory"] = _target(
        ratios.get("train_over_inference_memory"), "<=", TARGETS["train_over_inference_memory"]
    )
    out["reference_over_step"] = _target(
        ratios.get("reference_over_step"), ">=", TARGETS["reference_over_step"]
    )
    return out


def _target(value: float | None, op: str, limit: float) -> dict[str, Any]:
    ok = None if value is None else (value <= limit if op == "<=" else value >= limit)
    return {"value": value, "target": f"{op} {limit}", "ok": ok}


def machine_info(device: torch.device) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    with contextlib.suppress(OSError):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# ---------------------------------------------------------------- memory phases


def _phase_argv(args: argparse.Namespace, phase: str) -> list[str]:
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


def _start_memory_phases(args: argparse.Namespace) -> dict[str, subprocess.Popen]:
    """Both phases at once: each is its own process, so their peaks cannot mix."""
    return {
        phase: subprocess.Popen(
            _phase_argv(args, phase), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for phase in ("inference", "train")
    }


def _finish_memory_phases(procs: dict[str, subprocess.Popen]) -> dict[str, dict]:
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


def _memory_phase(args: argparse.Namespace) -> dict:
    """One phase in a fresh process: inference (forward passes only) or training steps."""
    import numpy as np
    import torch

    from paczero.session import pool_losses

    s = _session(args)
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
        _sync(device)
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


# ---------------------------------------------------------------- table


def format_table(result: dict) -> str:
    c, sec, tok = result["config"], result["seconds"], result["tokens"]
    m = result["machine"]
    lines = [
        f"paczero bench: {c['model']} {c['track']} ({c['trainable']:,} trainable of "
        f"{c['parameters']:,}), {c['dtype']} on {c['device']}, sst2 pool {c['pool']}, "
        f"{c['mechanism']} M={c['subsets']}, micro-batch {c['micro_batch']} sequences / "
        f"{c.get('micro_batch_tokens') or 'any'} tokens, "
        f"restore {c['restore']}",
        f"machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads, "
        f"torch {m['torch']}" + (f", load {m['load_average']}" if "load_average" in m else ""),
        f"medians of {c['repeats']} repeats after {c['warmup']} warm-up",
        "",
        f"{'what':<38}{'seconds':>10}{'x floor':>10}",
    ]
    floor = sec["floor"]

    def row(name: str, key: str) -> None:
        if key in sec:
            lines.append(f"{name:<38}{sec[key]:>10.3f}{sec[key] / floor:>10.3f}")

    row("floor (2 forward passes, no z)", "floor")
    row("full step", "step")
    row("  forward passes inside the step", "step_forward")
    row("  perturbation passes (z, restore)", "perturbation")
    row("  mechanism (release)", "mechanism")
    row("reference-style step", "reference")
    lines.append("")
    pad = tok["pool_padded"] / max(tok["pool_real"], 1)
    lines.append(
        f"tokens/s: step {tok['step_per_s']:.0f}, floor {tok['floor_per_s']:.0f} "
        f"({tok['pool_real']} real tokens per pass, padding x{pad:.2f})"
    )
    comp = result.get("compute")
    if comp:
        lines.append(
            f"compute: floor {comp['floor_tflops']:.3g} TFLOP/s, step {comp['step_tflops']:.3g} "
            f"TFLOP/s; peak {comp['peak_tflops_probe']:.3g} TFLOP/s ({comp['probe']}): "
            f"floor {100 * comp['floor_fraction_of_peak']:.1f}%, "
            f"step {100 * comp['step_fraction_of_peak']:.1f}% of it"
        )
    mem = result.get("memory")
    if mem:
        for phase in ("inference", "train"):
            info = mem.get(phase, {})
            if "error" in info:
                lines.append(f"peak memory {phase}: failed ({info['error']})")
            else:
                lines.append(
                    f"peak memory {phase:<9}: {info['peak_bytes'] / 2**20:8.1f} MiB "
                    f"({info['kind']}; after load {info['base_bytes'] / 2**20:.1f} MiB)"
                )
    lines.append("")
    lines.append(f"{'target':<30}{'value':>10}{'target':>10}{'holds':>8}")
    for name, t in result["targets"].items():
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        ok = "-" if t["ok"] is None else ("yes" if t["ok"] else "NO")
        lines.append(f"{name:<30}{value:>10}{t['target']:>10}{ok:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paczero.bench", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    from paczero.quiet import quiet_libraries

    quiet_libraries()
    result = run_bench(args)
    if args.phase != "all":
        print(json.dumps(result))  # read by the parent bench
    else:
        print(format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
