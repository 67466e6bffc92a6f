"""The machine a run ran on, as result.json records it: its peak memory, the library
versions and the hardware (public: none of it depends on the data)."""

from __future__ import annotations

import platform
import resource
import sys
from importlib import metadata
from typing import Any

import torch


def peak_memory() -> dict[str, Any]:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out: dict[str, Any] = {"peak_rss_mb": round(peak_kb / 1024, 1)}
    if torch.cuda.is_available():
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def versions() -> dict[str, str]:
    names = ("torch", "transformers", "peft", "paczero")
    versions = {"python": sys.version.split()[0]}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def hardware(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
