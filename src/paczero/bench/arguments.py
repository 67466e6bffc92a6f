"""`paczero bench`'s options and the run config they build: the trainer's own code path,
full-pool steps (``--quick``: a tiny random model on synthetic data)."""

from __future__ import annotations

import argparse
from typing import Any


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
        help="also time the published-code-style step (paczero.bench.reference_step)",
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
    bench_config(quick_defaults(args))


def quick_defaults(args: argparse.Namespace) -> argparse.Namespace:
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
