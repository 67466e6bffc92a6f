"""Durable runs: killed and resumed runs match uninterrupted ones; export by replay; secrets."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from paczero.cli import main
from paczero.config import ModelConfig
from paczero.durable import export
from paczero.evaluation import evaluate
from paczero.models import load_model
from paczero.trainer import train

from sizes import small_run

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
MI = ["mechanism.name=paczero-mi", "mechanism.subsets=4", "mechanism.budget=0.05"]
SMALL = small_run("train.batch_size=full")
CHAIN = [*MI, *SMALL, "seed.secret=11", "train.steps=60", "train.checkpoint_every=7"]
CHAIN += ["train.eval_every=20"]


def launch(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "paczero", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def logged(run: Path) -> list[dict]:
    path = run / "releases.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]


def wait_for_steps(proc: subprocess.Popen, run: Path, steps: int) -> None:
    deadline = time.monotonic() + 240
    while len(logged(run)) < steps:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not progress"
        time.sleep(0.005)


def test_killed_and_resumed_runs_equal_an_uninterrupted_run(tmp_path):
    reference, run = tmp_path / "reference", tmp_path / "run"
    done = launch("train", "smoke", "--out", str(reference), "--quiet", *sets(CHAIN))
    assert done.wait() == 0, done.communicate()

    # 1. SIGTERM: the step finishes, a checkpoint is written, the exit code says so
    proc = launch("train", "smoke", "--out", str(run), "--quiet", *sets(CHAIN))
    wait_for_steps(proc, run, 9)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert f"paczero resume {run}" in err
    steps_before = len(logged(run))
    assert not (run / "result.json").exists() and steps_before < 60
    checkpoint = run / "checkpoints" / f"step-{steps_before:07d}"
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["mechanism"] == logged(run)[-1]["state"]  # the posterior, public
    spent_before = logged(run)[-1]["cumulative"]

    # 2. SIGKILL at arbitrary moments of resumed runs
    spent_mid = spent_before
    for extra in (6, 15):
        proc = launch("resume", str(run), "--quiet")
        wait_for_steps(proc, run, len(logged(run)) + extra)
        proc.kill()
        proc.wait()
        assert not (run / "result.json").exists()
        assert logged(run)[-1]["cumulative"] >= spent_mid
        spent_mid = logged(run)[-1]["cumulative"]

    # 3. resume to the end
    proc = launch("resume", str(run), "--quiet")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert "Privacy report (paczero-mi)" in out

    assert (run / "releases.jsonl").read_bytes() == (reference / "releases.jsonl").read_bytes()
    assert (run / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()
    for name in ("final", "best"):
        a = load_file(run / "checkpoints" / f"{name}.safetensors")
        b = load_file(reference / "checkpoints" / f"{name}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    ours = json.loads((run / "result.json").read_text())
    theirs = json.loads((reference / "result.json").read_text())
    assert ours["privacy"] == theirs["privacy"]
    assert ours["privacy"]["spent"]["charged"] >= spent_mid
    assert ours["metrics"]["test"] == theirs["metrics"]["test"]
    assert ours["training"]["resumed_from_step"] > steps_before
    last, ref_last = logged(run)[-1], logged(reference)[-1]
    assert last["state"]["log_posterior"] == ref_last["state"]["log_posterior"]


DP_CHAIN = [*SMALL, "mechanism.name=dpzero", "mechanism.epsilon=2", "mechanism.clip=5"]
DP_CHAIN += ["mechanism.expected_batch=4", "mechanism.accountant=rdp", "seed.secret=5"]
DP_CHAIN += ["train.steps=40", "train.checkpoint_every=6", "train.eval_every=10"]


def test_a_killed_dp_run_resumes_to_the_uninterrupted_run(tmp_path):
    reference, run = tmp_path / "reference", tmp_path / "run"
    done = launch("train", "smoke", "--out", str(reference), "--quiet", *sets(DP_CHAIN))
    assert done.wait() == 0, done.communicate()
    proc = launch("train", "smoke", "--out", str(run), "--quiet", *sets(DP_CHAIN))
    for extra in (7, 11):
        wait_for_steps(proc, run, len(logged(run)) + extra)
        proc.kill()
        proc.wait()
        assert not (run / "result.json").exists()
        proc = launch("resume", str(run), "--quiet")
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    for name in ("releases.jsonl", "metrics.jsonl", "private/releases.jsonl"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    for name in ("final", "best"):
        a = load_file(run / "checkpoints" / f"{name}.safetensors")
        b = load_file(reference / "checkpoints" / f"{name}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), name
    ours = json.loads((run / "result.json").read_text())["privacy"]
    assert ours == json.loads((reference / "result.json").read_text())["privacy"]
    assert ours["spent"]["epsilon"] == pytest.approx(2.0, rel=1e-2)


def test_resume_refuses_a_run_without_its_secret_or_with_another_run_secret(tmp_path, capsys):
    quick = [*SMALL, "train.steps=4", "mechanism.name=paczero-zpl", "mechanism.subsets=4"]
    first = train("smoke", out=tmp_path / "a", overrides=quick, progress=False).run_dir
    second = train("smoke", out=tmp_path / "b", overrides=[*quick, "seed.public=9"], progress=False)
    assert main(["resume", str(first)]) == 2
    assert "finished run" in capsys.readouterr().err

    (first / "result.json").unlink()
    (first / "private" / "secret.json").unlink()
    assert main(["resume", str(first)]) == 2
    assert "private/secret.json is missing" in capsys.readouterr().err

    shutil.copy(second.run_dir / "private" / "secret.json", first / "private" / "secret.json")
    assert main(["resume", str(first)]) == 2
    err = capsys.readouterr().err
    assert "belongs to a different run" in err and "\n" not in err.strip()


@pytest.mark.parametrize("track", ["lora", "full"])
def test_export_by_replay_reproduces_the_trained_tensors(tmp_path, track):
    quick = [*SMALL, "train.steps=8", "train.eval_every=4", f"model.track={track}"]
    result = train("smoke", out=tmp_path / "run", overrides=quick, progress=False)
    run = result.run_dir
    shutil.rmtree(run / "checkpoints" / "step-0000000")  # the log alone must be enough
    info = export(run, tmp_path / "best")
    assert info["step"] == result.data["metrics"]["best_step"]
    best = load_file(run / "checkpoints" / "best.safetensors")
    base = load_model(ModelConfig(name="tiny-llama", track="full", device="cpu"), 0).model
    if track == "lora":
        model = PeftModel.from_pretrained(base, tmp_path / "best")
    else:
        model = AutoModelForCausalLM.from_pretrained(tmp_path / "best")
    named = dict(model.named_parameters())
    for name, tensor in best.items():
        assert torch.equal(named[name], tensor), name

    final = export(run, tmp_path / "final", step="final")
    assert final["step"] == 8
    metrics = evaluate(tmp_path / "best", overrides=["data.source=synthetic", *SMALL])
    assert metrics["accuracy"] == pytest.approx(result.test["accuracy"])


def test_export_refuses_bad_requests(tmp_path, capsys):
    result = train("smoke", out=tmp_path / "run", overrides=[*SMALL, "train.steps=2"])
    assert main(["export", str(result.run_dir), "--to", str(tmp_path / "x"), "--step", "9"]) == 2
    assert "outside the logged steps" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    assert main(["export", str(result.run_dir), "--to", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err


SECRET_KEYS = ("secret_index", "secret_sign", "secret_mean", "noise")


def test_no_secret_outside_private(tmp_path):
    quick = [*MI, *SMALL, "train.steps=10", "seed.secret=12345678901234567"]
    with pytest.warns(UserWarning):
        run = train("smoke", out=tmp_path / "run", overrides=quick, progress=False).run_dir
    private = json.loads((run / "private" / "mechanism.json").read_text())
    assert "secret_index" in private
    secret_lines = (run / "private" / "releases.jsonl").read_text()
    assert "secret_sign" in secret_lines and "noise" in secret_lines
    root = str(json.loads((run / "private" / "secret.json").read_text())["root"])
    checked = 0
    for path in run.rglob("*"):
        if "private" in path.parts or not path.is_file():
            continue
        if path.suffix in (".json", ".jsonl"):
            text = path.read_text()
            documents = (
                [json.loads(x) for x in text.splitlines()]
                if path.suffix == ".jsonl"
                else [json.loads(text)]
            )
            for document in documents:
                assert not set(_keys(document)) & set(SECRET_KEYS), path
            checked += 1
        assert root.encode() not in path.read_bytes(), path  # no public file holds the seed
    assert checked >= 4
    releases = [json.loads(x) for x in (run / "releases.jsonl").read_text().splitlines()]
    allowed = {"q", "unanimous", "frac_plus", "n_plus", "empty_subsets", "step_budget"}
    allowed |= {"release_budget", "sigma", "flip_prob", "release_value", "skip_reason"}
    for record in releases:
        for public in record["public"]:
            assert set(public) <= allowed, set(public) - allowed
    assert os.stat(run / "private").st_mode & 0o077 == 0
    for path in (run / "private").iterdir():
        assert os.stat(path).st_mode & 0o077 == 0, path


def _keys(document, skip=("config",)):
    """Every key of a JSON document, outside the echoed config."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key in skip:
                continue
            yield key
            yield from _keys(value, skip)
    elif isinstance(document, list):
        for value in document:
            yield from _keys(value, skip)


RESUME = "Resume with: paczero resume "
EVAL = [*SMALL, "train.steps=6", "train.eval_every=2", "train.eval_batch=2"]


def test_a_signal_during_an_evaluation_stops_it_and_resume_repeats_it(
    tmp_path, capsys, monkeypatch
):
    """SIGTERM in the middle of a dev evaluation stops it before its next micro-batch (not
    after the whole dev set), checkpoints the logged step and says how to resume; the
    resumed run equals an uninterrupted one."""
    import paczero.trainer

    reference, run = tmp_path / "reference", tmp_path / "run"
    assert main(["train", "smoke", "--out", str(reference), "--quiet", *sets(EVAL)]) == 0
    phase, evals = paczero.trainer.progress_lines.phase, []

    def signalled(label):
        evals.append(label)
        if len(evals) == 2:  # the evaluation after step 2
            os.kill(os.getpid(), signal.SIGTERM)
        return phase(label)

    monkeypatch.setattr(paczero.trainer.progress_lines, "phase", signalled)
    capsys.readouterr()
    assert main(["train", "smoke", "--out", str(run), "--quiet", *sets(EVAL)]) == 128 + 15
    err = capsys.readouterr().err.strip()
    assert err == f"paczero: interrupted after step 2; checkpoint written. {RESUME}{run}"
    assert [m["step"] for m in map(json.loads, (run / "metrics.jsonl").open())] == [0]
    assert (run / "checkpoints" / "step-0000002").is_dir() and len(logged(run)) == 2
    monkeypatch.setattr(paczero.trainer.progress_lines, "phase", phase)
    assert main(["resume", str(run), "--quiet"]) == 0
    for name in ("releases.jsonl", "metrics.jsonl"):
        assert (run / name).read_bytes() == (reference / name).read_bytes()


# The mechanism section of a config.yaml written before each mechanism owned its keys:
# every mechanism's keys, with their defaults.
OLD_MECHANISM_KEYS = {
    "construction": "random-halves",
    "clip": None,
    "allocation": "adaptive",
    "release": "gaussian",
    "disagreement": "coin",
    "skip_all_zero": False,
    "epsilon": None,
    "delta": 1e-5,
    "expected_batch": None,
    "noise": "gaussian",
    "denominator": "expected",
    "count_fraction": 0.05,
    "accountant": "pld",
    "match_mi": None,
}


def test_a_run_whose_config_lists_every_mechanisms_keys_resumes_exports_and_evaluates(tmp_path):
    from paczero.durable import resume

    sets = [*MI, *SMALL, "train.steps=3", "seed.secret=5"]
    with pytest.warns(UserWarning):  # seed.secret: a test's reproducible secret
        run = train("smoke", out=tmp_path / "run", overrides=sets).run_dir
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["mechanism"] = {**config["mechanism"], **OLD_MECHANISM_KEYS, "subsets": 4}
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    identity = json.loads((run / "run.json").read_text())
    del identity["config"]  # such a run's run.json did not keep its config yet
    (run / "run.json").write_text(json.dumps(identity))
    test = json.loads((run / "result.json").read_text())["metrics"]["test"]
    assert export(run, tmp_path / "out", step="final")["step"] == 3
    assert evaluate(run)["accuracy"] == pytest.approx(test["accuracy"])
    (run / "result.json").unlink()  # a finish killed after its test line: resumed again
    assert resume(run, progress=False).test["accuracy"] == pytest.approx(test["accuracy"])
