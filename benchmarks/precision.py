"""Precision study: per-example derivatives and subset signs by dtype, same seeds, same pool.

For each track and dtype the model is loaded afresh, and the same direction seeds give
per-example derivatives g (exact restore, so every direction starts from the same theta).
Each dtype is compared with the reference dtype (float64 by default): correlation of g,
agreement of the M subset-mean signs, and agreement of the unanimity decision (ZPL's
release: unanimous +1, unanimous -1, or a coin).

    PACZERO_DATA_DIR=../shared/data python benchmarks/precision.py --json precision.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from paczero.config import ModelConfig
from paczero.engine.zo import ZOEstimator
from paczero.mechanisms.subsets import membership_matrix
from paczero.models import load_model
from paczero.privacy.randomness import public_stream
from paczero.session import pool_losses
from paczero.tasks import DataConfig, TaskConfig, build_task, load_splits


def derivatives(track: str, dtype: str, args, seeds: list[int]) -> tuple[np.ndarray, float]:
    """(directions, N) derivatives in ``dtype``, and the seconds per forward pass."""
    load_dtype = "float32" if dtype == "float64" else dtype
    cfg = ModelConfig(name=args.model, track=track, dtype=load_dtype, device="cpu")
    loaded = load_model(cfg, seed=public_stream(0).seed("model-init"))
    if dtype == "float64":
        loaded.model.double()  # LoRA adapters too: the whole computation in float64
    task = build_task(TaskConfig(), loaded.tokenizer)
    splits = load_splits("sst2", DataConfig(num_train=args.pool, num_dev=1, num_test=1))
    pool = task.encode(splits.pool)
    rows = np.arange(len(pool))
    params = [p for _, p in loaded.trainable]
    estimator = ZOEstimator(params, args.eps, restore="exact")
    passes, elapsed = 0, 0.0

    def losses() -> torch.Tensor:
        nonlocal passes, elapsed
        t0 = time.perf_counter()
        out = pool_losses(loaded.model, task, pool, rows, args.micro_batch)
        elapsed += time.perf_counter() - t0
        passes += 1
        return out

    g = np.stack([estimator.estimate(seed, losses).derivatives for seed in seeds])
    return g, elapsed / passes


def compare(g: np.ndarray, ref: np.ndarray, a: np.ndarray) -> dict:
    counts = a.sum(0)
    corr, sign_agree, unan_agree, unan, unan_ref = [], [], [], [], []
    for gk, rk in zip(g, ref, strict=True):
        corr.append(float(np.corrcoef(gk, rk)[0, 1]))
        s = np.where(a.T @ gk / counts >= 0, 1, -1)
        r = np.where(a.T @ rk / counts >= 0, 1, -1)
        sign_agree.append(float((s == r).mean()))
        decision = int(s[0]) if np.all(s == s[0]) else 0
        decision_ref = int(r[0]) if np.all(r == r[0]) else 0
        unan_agree.append(decision == decision_ref)
        unan.append(decision != 0)
        unan_ref.append(decision_ref != 0)
    return {
        "corr": corr,
        "corr_min": min(corr),
        "corr_median": float(np.median(corr)),
        "subset_sign_agreement": float(np.mean(sign_agree)),
        "unanimity_decisions_agree": int(sum(unan_agree)),
        "unanimous": int(sum(unan)),
        "unanimous_reference": int(sum(unan_ref)),
        "directions": len(corr),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--tracks", nargs="+", default=["full", "lora"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "float16"])
    parser.add_argument("--reference", default="float64", choices=("float64", "float32"))
    parser.add_argument("--pool", type=int, default=128)
    parser.add_argument("--directions", type=int, default=8)
    parser.add_argument("--subsets", type=int, default=16)
    parser.add_argument("--eps", type=float, default=1e-3)
    parser.add_argument("--micro-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    public = public_stream(0)
    seeds = [public.seed("direction", k, 0) for k in range(args.directions)]
    a = membership_matrix(args.pool, args.subsets, "random-halves", public.generator("membership"))
    out = {"config": vars(args), "tracks": {}}
    for track in args.tracks:
        ref, ref_pass = derivatives(track, args.reference, args, seeds)
        rows = {args.reference: {"seconds_per_pass": ref_pass, "reference": True}}
        print(f"{track} {args.reference}: {ref_pass:.2f} s/pass", flush=True)
        for dtype in args.dtypes:
            if dtype == args.reference:
                continue
            g, per_pass = derivatives(track, dtype, args, seeds)
            rows[dtype] = {"seconds_per_pass": per_pass, **compare(g, ref, a)}
            r = rows[dtype]
            print(
                f"{track} {dtype}: corr min {r['corr_min']:.4f} median {r['corr_median']:.4f}, "
                f"subset signs {r['subset_sign_agreement']:.3f}, unanimity decisions "
                f"{r['unanimity_decisions_agree']}/{r['directions']}, {per_pass:.2f} s/pass",
                flush=True,
            )
            out["tracks"][track] = rows
            if args.json_path:
                Path(args.json_path).write_text(json.dumps(out, indent=2) + "\n")
        out["tracks"][track] = rows
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
