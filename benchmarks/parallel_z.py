"""Proposed fix for the full-parameter perturbation cost: z blocks generated on all cores.

``torch.randn`` with a CPU generator runs on one core, and generating z dominates a
perturbation pass (adding it is ~10x cheaper). Each tensor already has its own generator
seeded by (direction seed, tensor index), so tensors can be perturbed concurrently with
bit-identical results: torch releases the GIL inside the op. This script checks the
identity and times both on the model's trainable tensors.

    python benchmarks/parallel_z.py --track full --threads 2
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from paczero.config import ModelConfig
from paczero.models import load_model
from paczero.zo import add_direction, direction_block


def add_direction_parallel(
    params: Sequence[torch.Tensor], direction_seed: int, scale: float, pool: ThreadPoolExecutor
) -> None:
    """theta += scale * z(seed), the same values as ``zo.add_direction``, tensors in parallel.

    Largest tensors first so the long ones do not finish last; at most one z buffer per
    worker is alive at a time.
    """

    def one(index: int) -> None:
        with torch.no_grad():  # grad mode is per thread
            param = params[index]
            z = direction_block(param, direction_seed, index)
            param.add_(z.to(param.dtype), alpha=scale)

    order = sorted(range(len(params)), key=lambda i: -params[i].numel())
    list(pool.map(one, order))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--track", choices=("lora", "full"), default="full")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    loaded = load_model(ModelConfig(name=args.model, track=args.track, device="cpu"), seed=0)
    params = [p for _, p in loaded.trainable]
    copy = [p.detach().clone() for p in params]
    pool = ThreadPoolExecutor(max_workers=args.threads)
    add_direction(params, 7, 1e-3)
    add_direction_parallel(copy, 7, 1e-3, pool)
    same = all(torch.equal(a, b) for a, b in zip(params, copy, strict=True))
    print(f"bit-identical to zo.add_direction: {same}")
    for name, fn in (
        ("serial", lambda s: add_direction(params, s, 1e-3)),
        (f"parallel x{args.threads}", lambda s: add_direction_parallel(params, s, 1e-3, pool)),
    ):
        times = []
        for seed in range(args.repeats):
            t0 = time.perf_counter()
            fn(seed)
            times.append(time.perf_counter() - t0)
        print(f"{name}: one perturbation pass {sorted(times)[len(times) // 2]:.3f} s (median)")


if __name__ == "__main__":
    main()
