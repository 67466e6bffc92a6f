"""Data parallel with torch.distributed (gloo, two processes, one thread each): a run over
two ranks writes the bytes one process writes; it resumes in one process; ranks that
disagree stop with one line."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from paczero.distributed import World, close_world, leave_together, unowned
from paczero.trainer import train

from sizes import small_run

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
TINY = small_run("train.steps=8")  # gloo on the CPU; a visible GPU is not used
TINY += ["train.eval_every=4", "zo.micro_batch=4", "seed.secret=3", "train.checkpoint_every=2"]
MECHANISMS = {
    "paczero-zpl": ["mechanism.name=paczero-zpl", "mechanism.subsets=4", "train.batch_size=full"],
    "paczero-mi": [
        "mechanism.name=paczero-mi",
        "mechanism.subsets=4",
        "mechanism.budget=0.05",
        "train.batch_size=full",
    ],
    "dpzero": [
        "mechanism.name=dpzero",
        "mechanism.epsilon=2",
        "mechanism.clip=5",
        "mechanism.expected_batch=8",
        "mechanism.accountant=rdp",
    ],
}
COMPARED = ("releases.jsonl", "metrics.jsonl", "private/releases.jsonl", "config.yaml")


def sets(overrides):
    return [arg for item in overrides for arg in ("--set", item)]


def one_process(*args):
    return subprocess.run(
        [sys.executable, "-m", "paczero", *args, "--quiet"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def in_process(out, overrides):
    with pytest.warns(UserWarning, match="seed.secret"):
        train("smoke", out=out, overrides=overrides, progress=False)


def torchrun(*args, nproc=2, wait=True):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", "-m", "paczero", *args, "--quiet"]
    if not wait:
        return subprocess.Popen(
            cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)


def assert_same_run(a, b, compared=COMPARED):
    for name in compared:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("final", "best"):
        ta = load_file(a / "checkpoints" / f"{name}.safetensors")
        tb = load_file(b / "checkpoints" / f"{name}.safetensors")
        assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta), name
    ra, rb = (json.loads((d / "result.json").read_text()) for d in (a, b))
    assert ra["privacy"] == rb["privacy"] and ra["metrics"] == rb["metrics"]


def files(run_dir):
    return sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())


def test_owners_balance_padded_tokens_the_same_way_on_every_rank():
    costs = [64.0, 8.0, 32.0, 32.0, 16.0, 8.0]
    owners = World(rank=1, size=2).owners(costs)
    assert owners == World(rank=0, size=2).owners(costs)  # every rank computes the same map
    loads = [sum(c for c, o in zip(costs, owners, strict=True) if o == r) for r in (0, 1)]
    assert sorted(loads) == [80.0, 80.0]
    assert World().owners(costs) == [0] * 6


def test_unowned_positions_sum_to_exactly_the_owner_value():
    values = torch.tensor([1.5, -0.0, 0.0, 3e-38, float(np.float32(0.1))])
    assert torch.equal(values + unowned(5), values)
    assert torch.equal(torch.signbit(values + unowned(5)), torch.signbit(values))


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_two_processes_write_the_bytes_of_one(tmp_path, name):
    overrides = [*TINY, *MECHANISMS[name]]
    in_process(tmp_path / "one", overrides)  # one thread, as each rank below
    double = torchrun("train", "smoke", "--out", str(tmp_path / "two"), *sets(overrides))
    assert double.returncode == 0, double.stderr
    assert_same_run(tmp_path / "one", tmp_path / "two")
    assert files(tmp_path / "one") == files(tmp_path / "two")  # rank 1 wrote nothing extra
    assert double.stdout.count("Privacy report") == 1  # rank 0 reports for the run


@pytest.mark.parametrize("victim", [0, 1])
def test_a_two_process_run_with_one_rank_killed_resumes_in_one_process(tmp_path, victim):
    overrides = [*TINY, *MECHANISMS["paczero-mi"], "train.steps=200", "train.eval_every=50"]
    in_process(tmp_path / "ref", overrides)
    run = tmp_path / "run"
    proc = torchrun("train", "smoke", "--out", str(run), *sets(overrides), wait=False)
    log = run / "releases.jsonl"
    deadline = time.monotonic() + 240
    while not (log.exists() and len(log.read_text().splitlines()) >= 20):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(_rank_pid(run, victim), 9)  # SIGKILL one rank; torchrun stops the other
    _, err = proc.communicate(timeout=240)
    assert proc.returncode != 0
    while subprocess.run(["pgrep", "-f", str(run)], capture_output=True).returncode == 0:
        time.sleep(0.05)
    assert not (run / "result.json").exists()
    resumed = one_process("resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(tmp_path / "ref", run)


def _rank_pid(run, rank):
    """The pid of the worker process with this RANK in its environment."""
    found = subprocess.run(["pgrep", "-f", str(run)], capture_output=True, text=True)
    for pid in map(int, found.stdout.split()):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and f"LOCAL_RANK={rank}".encode() in environ:
            return pid
    raise AssertionError(f"no worker with RANK={rank}")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ranks_that_disagree_on_the_config_stop_with_one_line(tmp_path):
    port = str(_free_port())
    procs = []
    for rank, lr in ((0, "0.001"), (1, "0.002")):  # a different config on rank 1
        env = {**ENV, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        args = ["train", "smoke", "--out", str(tmp_path / "run"), "--quiet"]
        args += sets([*TINY, f"train.lr={lr}"])
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "paczero", *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [2, 2]
    err0 = outputs[0][1].strip()
    assert err0.count("\n") == 0 and "rank(s) 1 disagree with rank 0 on the resolved config" in err0
    assert outputs[1][1].strip() == ""  # the same error: rank 0 says it once
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "device_map",
    [
        "auto",
        {
            "model.embed_tokens": "cpu",
            "model.layers": "cpu",
            "model.norm": "cpu",
            "model.rotary_emb": "cpu",
            "lm_head": "cpu",
        },
    ],
    ids=["auto", "explicit"],
)
@pytest.mark.parametrize("track", ["full", "lora"])
def test_a_model_placed_with_a_device_map_trains_as_on_one_device(tmp_path, device_map, track):
    """Without GPUs only a CPU map can run: it takes accelerate's placement path and must
    give the single-device result bit for bit."""
    overrides = [*TINY, *MECHANISMS["paczero-zpl"], f"model.track={track}"]
    plain = tmp_path / "plain"
    in_process(plain, overrides)
    mapped = tmp_path / "mapped"
    with pytest.warns(UserWarning, match="seed.secret"):
        train(
            "smoke",
            out=mapped,
            overrides=[*overrides, f"model.device_map={json.dumps(device_map)}"],
            progress=False,
        )
    assert_same_run(plain, mapped, compared=COMPARED[:-1])  # config.yaml has the map


def test_offloading_device_maps_are_refused_in_one_line():
    from paczero.config import ModelConfig
    from paczero.errors import UserError
    from paczero.models import load_model

    with pytest.raises(UserError, match="offloading to disk"):
        load_model(ModelConfig(name="tiny-llama", device_map={"": "disk"}), seed=0)
    with pytest.raises(UserError, match="does not fit this model"):
        load_model(ModelConfig(name="tiny-llama", device_map={"model.nothing": "cpu"}), seed=0)


def test_finished_ranks_meet_before_the_group_is_torn_down(monkeypatch):
    """A finished run's ranks pass a barrier, then destroy the group; after a failure the
    group is destroyed without a barrier (a dead peer would never reach it)."""
    calls = []
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: "destroy" not in calls)
    monkeypatch.setattr(torch.distributed, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(torch.distributed, "destroy_process_group", lambda: calls.append("destroy"))
    world = World(rank=1, size=2)
    leave_together(world)
    close_world(world)  # the finally after it: nothing left to tear down
    assert calls == ["barrier", "destroy"]
    calls.clear()
    close_world(world)
    assert calls == ["destroy"]


FREED_AT_THE_END = """
import importlib, json, sys, weakref
import torch
from torch.distributed.distributed_c10d import _get_default_group
from paczero.distributed import BIND_THE_GROUP_ON_IMPORT, init_world, leave_together

world = init_world("cpu")
group = weakref.ref(_get_default_group())
world.sum(torch.ones(3))
from transformers import LlamaConfig  # loading a model imports torch's fsdp here
for module in BIND_THE_GROUP_ON_IMPORT:
    importlib.import_module(module)
world.sum(torch.ones(3))
leave_together(world)
report = {"rank": world.rank, "freed": group() is None}
open(sys.argv[1] + f".{world.rank}.json", "w").write(json.dumps(report))
"""


def test_the_group_is_freed_when_the_ranks_leave(tmp_path):
    """A group that outlives destroy_process_group keeps its gloo threads to interpreter
    exit, where a rank aborts (SIGABRT) in about half of the exits. Modules imported after
    the group exists (as transformers does) must not hold it: with init_world's early
    imports removed, both ranks report it alive."""
    script = tmp_path / "leave.py"
    script.write_text(FREED_AT_THE_END)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    reports = tmp_path / "report"  # one file per rank: their stdout lines can interleave
    done = subprocess.run(
        [*cmd, str(script), str(reports)], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    for rank in (0, 1):
        report = json.loads(Path(f"{reports}.{rank}.json").read_text())
        assert report == {"rank": rank, "freed": True}
