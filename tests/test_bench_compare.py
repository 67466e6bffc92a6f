"""`paczero bench --compare`: a zeroth-order step beside a first-order one (no timing checks)."""

from paczero.bench.arguments import quick_defaults
from paczero.bench.compare import MiB, compare_argv, first_order_keys, format_compare
from paczero.bench.memory import memory_phase


def test_compare_runs_each_method_s_own_step_over_the_same_pool(bench_args):
    """`paczero bench --compare dp-sgd`: the command of each phase, run here in-process (the
    bench runs each in its own process), and the table of both."""
    args = quick_defaults(bench_args("--quick", "--compare", "dp-sgd", "--repeats", "1"))
    commands = compare_argv(args)
    assert list(commands) == ["paczero-zpl", "dp-sgd"]
    assert "mechanism.clip=1" in commands["dp-sgd"] and "--phase" in commands["dp-sgd"]
    methods = {}
    for name, argv in commands.items():
        phase = bench_args(*argv[argv.index("--phase") :])
        assert phase.mechanism == name and phase.pool == args.pool == 16
        methods[name] = memory_phase(phase)
        assert methods[name]["step_s"] > 0 and methods[name]["peak_bytes"] > 0
    config = {"model": "tiny-llama", "track": "lora", "pool": 16, "micro_batch": 8}
    table = format_compare({"config": {**config, "dtype": "auto"}, "methods": methods})
    assert "paczero-zpl" in table and "dp-sgd" in table and "16 rows" in table


def test_dp_sgd_gets_a_private_step_s_keys_and_backprop_none():
    keys = first_order_keys("dp-sgd", 64)
    assert "mechanism.expected_batch=16" in keys and "mechanism.clip=1" in keys
    assert "mechanism.expected_batch=1" in first_order_keys("dp-sgd", 2)
    assert first_order_keys("backprop", 64) == []


def test_the_table_shows_memory_above_the_load_and_a_failed_method_s_error():
    config = {"model": "m", "track": "full", "pool": 8, "micro_batch": 4}
    methods = {
        "mezo": {"step_s": 0.5, "peak_bytes": 300 * MiB, "base_bytes": 100 * MiB},
        "dp-sgd": {"error": "out of memory"},
    }
    lines = format_compare({"config": config, "methods": methods}).splitlines()
    assert lines[0].startswith("One step over the same pool: m full, 8 rows, micro-batch 4")
    assert lines[2].split() == ["mezo", "0.500", "300", "200"]
    assert lines[3].split() == ["dp-sgd", "out", "of", "memory"]
