"""The bench's session and clock: the run's own session with a fixed secret root, and
wall time with the device synchronised around what is timed."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from paczero.bench.arguments import bench_config

if TYPE_CHECKING:  # torch loads only when a bench runs: the CLI stays quick
    import torch


def bench_session(args: argparse.Namespace):
    import torch

    from paczero.privacy.randomness import RandomStream
    from paczero.session import build_session

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = bench_config(args)
    # A fixed secret root: the bench releases nothing, and a seeded secret_stream would warn.
    return build_session(cfg, RandomStream(0, "secret"), "bench")


def sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> tuple[float, Any]:

    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out
