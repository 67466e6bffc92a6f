"""What the bench holds its times against: the compute a step achieves beside a matmul
probe's peak, the targets, and the machine it ran on."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paczero.bench.measure import timed

if TYPE_CHECKING:
    import torch

TARGETS = {
    "step_over_floor": {"lora": 1.10, "full": 1.35},
    "train_over_inference_memory": 1.15,
    "reference_over_step": 2.5,
}


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
    timed(lambda: a @ b, torch.device(device))  # warm-up (kernels, clocks)
    best = min(timed(lambda: a @ b, torch.device(device))[0] for _ in range(repeats))
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
