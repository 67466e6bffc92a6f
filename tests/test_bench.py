"""The bench's code path on a tiny model: every field of the table is there (no timing checks)."""

import json

import pytest
import torch

from paczero.bench import format_table, run_bench


def test_defaults_are_the_issue_setting(bench_args):
    args = bench_args()
    assert (args.model, args.track, args.pool, args.mechanism) == (
        "smollm2-135m",
        "lora",
        128,
        "paczero-zpl",
    )
    assert args.reference and args.memory and args.phase == "all"


@pytest.mark.parametrize("track", ["lora", "full"])
def test_quick_bench_reports_every_field(tmp_path, track, bench_args):
    out = tmp_path / "bench.json"
    memory = "--memory" if track == "full" else "--no-memory"  # one track spawns the phases
    result = run_bench(
        bench_args(
            "--quick",
            "--track",
            track,
            "--warmup",
            "0",
            "--repeats",
            "1",
            memory,
            "--json",
            str(out),
        )
    )

    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    config = result["config"]
    assert config["model"] == "tiny-llama" and config["track"] == track
    assert config["restore"] == ("exact" if track == "lora" else "fused")
    assert config["sequences_per_example"] == 1
    for key in ("floor", "step", "step_forward", "perturbation", "mechanism", "reference"):
        assert result["seconds"][key] > 0, key
        assert len(result["samples"][key]) == 1
    assert result["ratios"]["step_over_floor"] > 0
    assert result["ratios"]["reference_over_step"] > 0
    tokens = result["tokens"]
    assert 0 < tokens["pool_real"] <= tokens["pool_padded"] < tokens["reference_padded_per_pass"]
    assert tokens["step_per_s"] > 0 and tokens["floor_per_s"] > 0
    assert result["machine"]["torch"] == torch.__version__
    compute = result["compute"]  # 2 x parameters x real tokens per pass, over the time
    flop = 2 * 2 * config["parameters"] * tokens["pool_real"]
    assert compute["flop_per_step"] == flop
    assert compute["floor_tflops"] == pytest.approx(flop / result["seconds"]["floor"] / 1e12)
    assert compute["step_tflops"] == pytest.approx(flop / result["seconds"]["step"] / 1e12)
    assert compute["peak_tflops_probe"] > 0 and "matmul" in compute["probe"]
    assert compute["floor_fraction_of_peak"] == pytest.approx(
        compute["floor_tflops"] / compute["peak_tflops_probe"]
    )
    assert set(result["targets"]) == {
        "step_over_floor",
        "train_over_inference_memory",
        "reference_over_step",
    }
    if track == "full":
        for phase in ("inference", "train"):
            info = result["memory"][phase]
            assert "error" not in info, info
            assert info["phase"] == phase and info["peak_bytes"] >= info["base_bytes"] > 0
        assert result["ratios"]["train_over_inference_memory"] > 0
        assert result["targets"]["train_over_inference_memory"]["ok"] is not None
    else:
        assert "memory" not in result

    table = format_table(result)
    texts = ("floor", "full step", "perturbation", "mechanism", "reference-style", "tokens/s")
    for text in (*texts, "TFLOP/s", "of it"):
        assert text in table
    assert ("peak memory train" in table) == (track == "full")


def test_matmul_probe_measures_a_rate_on_the_cpu():
    from paczero.bench.compute import matmul_peak_tflops

    assert matmul_peak_tflops("cpu", torch.float32, size=128, repeats=1) > 0
