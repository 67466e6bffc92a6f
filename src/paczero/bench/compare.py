"""``paczero bench --compare dp-sgd``: one step of a zeroth-order mechanism beside one step of
a first-order baseline on the same model, pool and micro-batches.

Each method runs in its own process (``paczero.bench``'s train phase), so the peak memory of
one cannot hide in the other's; a step covers the whole pool of ``--pool`` rows in both (the
zeroth-order step's two forward passes per direction, DP-SGD's per-example gradients of
every row, clipped and noised), and the time is the median over ``--repeats`` steps.
"""

from __future__ import annotations

import argparse
from typing import Any

from paczero.bench.arguments import bench_config, quick_defaults
from paczero.bench.memory import finish_memory_phases, phase_argv

MiB = 2**20


def first_order_keys(name: str, pool: int) -> list[str]:
    """Config keys the baseline needs; DP-SGD's are a plausible private step (epsilon 2 over
    the bench's 1000 planned steps), which does not change its cost."""
    keys = {
        "dp-sgd": [
            "mechanism.epsilon=2",
            "mechanism.clip=1",
            f"mechanism.expected_batch={max(1, pool // 4)}",
            "mechanism.accountant=rdp",
        ]
    }
    return keys.get(name, [])


def compare_argv(args: argparse.Namespace) -> dict[str, list[str]]:
    """The train-phase command of each method."""
    other = argparse.Namespace(**vars(args))
    other.mechanism = args.compare
    other.overrides = [*args.overrides, *first_order_keys(args.compare, args.pool)]
    return {args.mechanism: phase_argv(args, "train"), args.compare: phase_argv(other, "train")}


def run_compare(args: argparse.Namespace) -> dict[str, Any]:
    import subprocess

    args = quick_defaults(args)
    rows = {}
    for name, argv in compare_argv(args).items():  # one after the other: no shared cores
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rows[name] = finish_memory_phases({"train": proc})["train"]
    config = {k: getattr(args, k) for k in ("track", "pool", "micro_batch", "dtype")}
    config["model"] = bench_config(args).model.name
    return {"config": config, "methods": rows}


def format_compare(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [
        f"One step over the same pool: {c['model']} {c['track']}, {c['pool']} rows, "
        f"micro-batch {c['micro_batch']}",
        f"{'method':<16}{'step s':>10}{'peak MiB':>12}{'above load MiB':>16}",
    ]
    for name, row in result["methods"].items():
        if "error" in row:
            lines.append(f"{name:<16}  {row['error']}")
            continue
        peak, base = row["peak_bytes"] / MiB, row["base_bytes"] / MiB
        lines.append(f"{name:<16}{row['step_s']:>10.3f}{peak:>12.0f}{peak - base:>16.0f}")
    return "\n".join(lines)
