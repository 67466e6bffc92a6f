"""`paczero bench --nproc`: the options each layout's subprocess gets, and the table."""

import argparse

from paczero.bench.parallel import _forwarded, format_parallel


def test_each_layout_gets_the_bench_options_as_flags():
    args = argparse.Namespace(model="tiny-llama", track="lora", pool=16, mechanism="mezo")
    args.subsets, args.micro_batch, args.quick, args.nproc = None, 8, True, 2
    args.overrides = ["train.lr=0.1"]
    flags = _forwarded(args)
    assert flags[:6] == ["--model", "tiny-llama", "--track", "lora", "--pool", "16"]
    assert "--subsets" not in flags and "--nproc" not in flags  # unset, and not forwarded
    assert flags[flags.index("--micro-batch") + 1] == "8" and "--quick" in flags
    assert flags[-2:] == ["--set", "train.lr=0.1"]


def test_the_table_has_a_row_per_layout_and_the_ratio():
    row = {"step_s": 0.25, "tokens_per_s": 1000.0, "collective_share": 0.125}
    row["allreduce_bytes_per_step"] = 64
    layouts = {
        "1x2": {**row, "processes": 1, "threads_per_process": 2},
        "2x1": {**row, "processes": 2, "threads_per_process": 1},
    }
    text = format_parallel({"layouts": layouts, "speedup_processes_over_threads": 1.5})
    lines = text.splitlines()
    assert len(lines) == 4 and lines[1].startswith("1 proc x 2 thread(s)")
    assert lines[2].split()[-4:] == ["0.250", "1000", "12.5%", "64"]
    assert lines[3] == "processes over threads: 1.50x (step time ratio)"
