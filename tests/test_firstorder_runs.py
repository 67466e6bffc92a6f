"""dp-sgd and backprop as runs of the harness: public files, resume, export, refusals."""

import json
import re
import signal

import pytest
import torch
from safetensors.torch import load_file

from paczero.cli import main
from paczero.config import load_config
from paczero.durable import export, resume
from paczero.errors import Interrupted, UserError
from paczero.mechanisms.firstorder import DPSGD
from paczero.records import release_records
from paczero.replay import replay
from paczero.trainer import Trainer, train

from sizes import small_run

SMALL = small_run(
    "train.steps=6", "train.eval_every=3", "seed.public=3", "model.track=lora", "train.lr=0.01"
)
DPSGD_KEYS = ["mechanism.name=dp-sgd", "mechanism.epsilon=4", "mechanism.clip=1"]
DPSGD_KEYS += ["mechanism.expected_batch=3", "mechanism.accountant=rdp"]
BACKPROP = ["mechanism.name=backprop", "train.batch_size=8", "mechanism.optimizer=adam"]


def _train(tmp_path, name, overrides, progress=False):
    return train("smoke", out=tmp_path / name, overrides=[*SMALL, *overrides], progress=progress)


def _public_files(run_dir):
    return {
        path.relative_to(run_dir).as_posix(): path
        for path in sorted(run_dir.rglob("*"))
        if path.is_file() and "private" not in path.parts
    }


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_dpsgd_public_files_are_identical_across_secret_samples_when_releases_are(
    tmp_path, monkeypatch, capsys
):
    """The sample-forcing test of the DP zeroth-order runs: the gradients really computed
    over two different secret samples are released as the same zeros; every public byte
    must then agree (nothing public came from the sample: its loss, size, emptiness)."""
    original = DPSGD.release_gradient

    def forced(self, sums, ctx):
        release = original(self, sums, ctx)
        release.grads = [torch.zeros_like(g) for g in release.grads]
        return release

    monkeypatch.setattr(DPSGD, "release_gradient", forced)
    a = _train(tmp_path, "a", [*DPSGD_KEYS, "seed.secret=1"], progress=True)
    bar = capsys.readouterr().err
    b = _train(tmp_path, "b", [*DPSGD_KEYS, "seed.secret=2"], progress=True)
    private = [
        [json.loads(x) for x in (r.run_dir / "private/releases.jsonl").open()] for r in (a, b)
    ]
    sizes = [[r["batch_size"] for r in p] for p in private]
    assert sizes[0] != sizes[1]  # the samples did differ
    assert all("loss" in r and "noise_norm" in r["releases"][0] for r in private[0])
    files_a, files_b = _public_files(a.run_dir), _public_files(b.run_dir)
    assert files_a.keys() == files_b.keys() and "releases.jsonl" in files_a
    for rel, path in files_a.items():
        if rel not in ("result.json", "run.json"):
            assert path.read_bytes() == files_b[rel].read_bytes(), rel
    for part in ("timing", "memory"):  # wall-clock time is not covered
        a.data.pop(part), b.data.pop(part)
    assert a.data == b.data
    for record in (json.loads(x) for x in (a.run_dir / "releases.jsonl").open()):
        assert "loss" not in record and record["public"] == [{}]
        assert record["kinds"] == ["dp-sgd"] and record["seeds"] == record["coeffs"] == []
        assert 0 < record["epsilon"] <= 4.0
    assert "dev_loss=" in bar and not re.search(r"[ ,]loss=", bar)
    privacy = a.privacy
    assert privacy["release_kinds"] == {"dp-sgd": 6} and privacy["releases"] == 6
    assert privacy["spent"]["epsilon"] == pytest.approx(4.0, rel=1e-2)
    assert "whole noisy gradient" in privacy["release_note"]
    assert privacy["frozen_layers"] == []  # LoRA: only Linear adapters train


def _interrupt_at(monkeypatch, step):
    original = Trainer.after_step

    def after_step(self, done):
        if done == step:
            self._signal = signal.SIGTERM
        return original(self, done)

    monkeypatch.setattr(Trainer, "after_step", after_step)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("keys", [DPSGD_KEYS + ["mechanism.optimizer=adam"], BACKPROP])
def test_an_interrupted_first_order_run_resumes_to_the_uninterrupted_run(
    tmp_path, monkeypatch, keys
):
    overrides = [*keys, "seed.secret=7"]
    reference = _train(tmp_path, "reference", overrides)
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 4)
        with pytest.raises(Interrupted):
            _train(tmp_path, "run", overrides)
    run = tmp_path / "run"
    state = load_file(run / "checkpoints/step-0000004/trainable.safetensors")
    assert any(k.startswith("optimizer/exp_avg") for k in state)  # Adam's moments saved
    resume(run, progress=False)
    for name in ("releases.jsonl", "metrics.jsonl", "private/releases.jsonl"):
        assert (run / name).read_bytes() == (reference.run_dir / name).read_bytes(), name
    for name in ("final", "best"):
        ours = load_file(run / f"checkpoints/{name}.safetensors")
        theirs = load_file(reference.run_dir / f"checkpoints/{name}.safetensors")
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours), name


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_export_loads_the_tensors_and_a_replay_is_refused(tmp_path, capsys):
    result = _train(tmp_path, "bp", BACKPROP)
    run = result.run_dir
    for step in ("best", "final"):  # the saved tensors, renamed the PEFT way
        info = export(run, tmp_path / f"out-{step}", step=step)
        saved = load_file(run / f"checkpoints/{step}.safetensors")
        adapter = load_file(tmp_path / f"out-{step}" / "adapter_model.safetensors")
        assert info["step"] == int(
            json.loads((run / "result.json").read_text())["metrics"]["best_step"]
            if step == "best"
            else 6
        )
        ours = sorted(float(t.double().abs().sum()) for t in adapter.values())
        theirs = sorted(float(t.double().abs().sum()) for t in saved.values())
        assert len(ours) == len(theirs) and ours == pytest.approx(theirs, rel=0, abs=0)
    with pytest.raises(UserError, match="first-order run .* cannot be replayed"):
        export(run, tmp_path / "out-2", step=2)  # no checkpoint of step 2 is kept
    records = release_records(json.loads(x) for x in (run / "releases.jsonl").open())
    with pytest.raises(UserError, match="cannot be replayed from the release log"):
        replay(None, records, 1)
    canaries = _train(tmp_path, "dp", [*DPSGD_KEYS, "audit.canaries=4", "seed.secret=3"])
    capsys.readouterr()
    assert main(["audit", str(canaries.run_dir)]) == 2  # it replays the log: refused
    err = capsys.readouterr().err.strip()
    assert "first-order run (dp-sgd)" in err and "\n" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["task.objective=neg-f1", "task.name=squad"], "task.objective neg-f1"),
        (["data.group_field=label"], "data.group_field"),
        (["mechanism.name=dp-sgd", "mechanism.clip=1", "mechanism.epsilon=2"], "expected_batch"),
        (["mechanism.optimizer=rmsprop"], "optimizer"),
    ],
)
def test_first_order_configs_are_refused_in_one_line(extra, message):
    with pytest.raises(UserError, match=message) as err:
        load_config("smoke", ["mechanism.name=backprop", *extra])
    assert "\n" not in str(err.value)
