"""A run is its log: resume without tensors (checkpoints/ deleted, or train.checkpoints none)
ends byte-identical to an uninterrupted run; first-order runs refuse in one line."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch
from safetensors.torch import load_file

from paczero.durable import export, resume
from paczero.errors import Interrupted, UserError
from paczero.trainer import Trainer, train

from sizes import small_run

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}

MECHANISMS = {
    "zpl": [],  # the private default
    "mi": ["mechanism.name=paczero-mi", "mechanism.subsets=4", "mechanism.budget=0.05"],
    "dpzero": [
        "mechanism.name=dpzero",
        "mechanism.epsilon=2",
        "mechanism.clip=5",
        "mechanism.expected_batch=4",
        "mechanism.accountant=rdp",  # seconds; the pld schedule is tested in privacy/
    ],
    "mezo": ["mechanism.name=mezo"],
}
STEPS = 12
BASE = small_run(f"train.steps={STEPS}", "train.eval_every=4", "seed.secret=7")
# not compared: how long it took, the memory it used, and the step it was resumed from
VARYING = {"timing", "memory"}


def _train(out, overrides, stop_at=None, monkeypatch=None):
    """A run in this process; ``stop_at``: a SIGTERM arrives while step ``stop_at`` runs."""
    if stop_at is not None:
        real = Trainer.log_release

        def log_release(self, result):
            real(self, result)
            if result.step + 1 == stop_at:
                self._signal = signal.SIGTERM

        monkeypatch.setattr(Trainer, "log_release", log_release)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train("smoke", out=out, overrides=overrides, progress=False)


def sets(overrides):
    return [arg for item in overrides for arg in ("--set", item)]


def logged(run):
    path = run / "releases.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(x) for x in lines if x.endswith("}")]


def _result(run):
    data = json.loads((run / "result.json").read_text())
    data["training"].pop("resumed_from_step")
    return {k: v for k, v in data.items() if k not in VARYING}


def _same_run(run, reference, config=True):
    for name in ("releases.jsonl", "metrics.jsonl", "private/releases.jsonl"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    for name in ("model.safetensors", "adapter_model.safetensors"):
        if (reference / "model" / name).exists():
            a, b = load_file(run / "model" / name), load_file(reference / "model" / name)
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    ours, theirs = _result(run), _result(reference)
    if not config:  # train.checkpoints differs
        ours.pop("config"), theirs.pop("config")
    assert ours == theirs


@pytest.mark.parametrize("track", ["lora", "full"])
@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_a_run_stopped_at_a_random_step_resumes_from_its_log_alone(
    tmp_path, monkeypatch, name, track
):
    """Default checkpoints, then checkpoints/ deleted: theta_0 is rebuilt from the config
    and the public seed, every logged release replayed."""
    keys = [*BASE, *MECHANISMS[name], f"model.track={track}"]
    reference = _train(tmp_path / "reference", keys).run_dir
    stop_at = random.Random(f"{name}-{track}").randrange(1, STEPS)
    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        _train(run, keys, stop_at, monkeypatch)
    monkeypatch.undo()
    assert len(logged(run)) == stop_at
    shutil.rmtree(run / "checkpoints")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resume(run, progress=False)
    _same_run(run, reference)
    for step in ("best", "final", 5):  # export replays the log: equal to the reference's
        a, b = (export(r, tmp_path / f"{r.name}-{step}", step=step) for r in (run, reference))
        assert a["step"] == b["step"]
        a_file = next((tmp_path / f"run-{step}").glob("*.safetensors"))
        b_file = tmp_path / f"reference-{step}" / a_file.name
        a_t, b_t = load_file(a_file), load_file(b_file)
        assert all(torch.equal(a_t[k], b_t[k]) for k in a_t)


@pytest.mark.parametrize("name", ["dpzero", "zpl"])
def test_train_checkpoints_none_writes_no_tensors_and_resumes_to_the_same_run(
    tmp_path, monkeypatch, name
):
    keys = [*BASE, *MECHANISMS[name], "train.checkpoints=none"]
    reference = _train(tmp_path / "reference", keys).run_dir
    with_tensors = _train(tmp_path / "tensors", [*BASE, *MECHANISMS[name]]).run_dir
    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        _train(run, keys, stop_at=5, monkeypatch=monkeypatch)
    monkeypatch.undo()
    assert not list(run.rglob("*.safetensors"))  # nothing but logs while it trains
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resume(run, progress=False)
    assert [p.relative_to(run).parts[0] for p in run.rglob("*.safetensors")] == ["model"]
    _same_run(run, reference)
    _same_run(reference, with_tensors, config=False)  # as a run that wrote its tensors


def test_a_killed_log_only_run_resumes_to_the_uninterrupted_run(tmp_path):
    """SIGKILL (no clean stop) of a train.checkpoints none run at a random step."""
    keys = [*BASE, *MECHANISMS["dpzero"], "train.checkpoints=none", "train.steps=20"]
    reference, run = tmp_path / "reference", tmp_path / "run"
    command = [sys.executable, "-m", "paczero", "train", "smoke", "--quiet", *sets(keys)]
    assert subprocess.run([*command, "--out", str(reference)], env=ENV).returncode == 0
    proc = subprocess.Popen([*command, "--out", str(run)], env=ENV, stderr=subprocess.DEVNULL)
    at = random.Random(3).randrange(2, 18)
    deadline = time.monotonic() + 240
    while len(logged(run)) < at:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    assert not (run / "result.json").exists()
    done = subprocess.run([sys.executable, "-m", "paczero", "resume", str(run), "--quiet"], env=ENV)
    assert done.returncode == 0
    _same_run(run, reference)


@pytest.mark.parametrize("name", ["backprop", "dp-sgd"])
def test_first_order_runs_refuse_to_resume_or_run_without_tensors(tmp_path, monkeypatch, name):
    keys = [*BASE, f"mechanism.name={name}", "train.lr=0.01"]
    if name == "dp-sgd":
        keys += ["mechanism.epsilon=2", "mechanism.clip=1", "mechanism.expected_batch=4"]
    with pytest.raises(UserError, match="whole gradients.*train.checkpoints tensors"):
        _train(tmp_path / "none", [*keys, "train.checkpoints=none"])
    run = tmp_path / "run"
    with pytest.raises(Interrupted):
        _train(run, keys, stop_at=3, monkeypatch=monkeypatch)
    monkeypatch.undo()
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(UserError, match="cannot be resumed: a first-order run") as err:
        resume(run, progress=False)
    assert "\n" not in str(err.value)
