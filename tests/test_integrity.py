"""A damaged or shared run directory is detected, never trained on (issue #18).

One test (or one parametrized case) per item of the issue's integrity list: the lock, the
run identity, the hash-chained logs and their checkpoints, theta_0 before training and as
the start of every rebuild, the test line of a killed finish, temporaries and unreadable
checkpoints, missing private state, full disks, mixed signals, unique default names,
library chatter, exports of seed-built models, and numerical divergence.
"""

import ctypes
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
import torch
from safetensors.torch import load_file

import paczero.privacy.ledger as ledger
import paczero.runs.directory as run_directory
import paczero.trainer as trainer_module
from paczero.cli import main
from paczero.config import load_config
from paczero.durable import export
from paczero.evaluation import evaluate
from paczero.runs import RunDir, default_run_dir
from paczero.trainer import Trainer, train

from sizes import small_run

pytestmark = pytest.mark.filterwarnings("ignore:seed.secret is set")

SMALL = small_run("train.batch_size=full")
REF = [*SMALL, "mechanism.name=paczero-mi", "mechanism.subsets=4", "mechanism.budget=0.05"]
REF += ["seed.secret=11", "train.steps=12", "train.checkpoint_every=5", "train.eval_every=3"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: every repaired run below must end byte-identical to it."""
    out = tmp_path_factory.mktemp("reference") / "run"
    return train("smoke", out=out, overrides=REF, progress=False).run_dir


def stopped(reference: Path, to: Path, keep: int) -> Path:
    """The reference as a run killed after ``keep`` committed steps (its later checkpoints,
    records, evaluations and results not yet written)."""
    shutil.copytree(reference, to)
    for name in ("result.json", "training.png", "checkpoints/final.safetensors"):
        (to / name).unlink(missing_ok=True)
    shutil.rmtree(to / "model", ignore_errors=True)
    for log in (to / "releases.jsonl", to / "private" / "releases.jsonl"):
        log.write_text("".join(log.read_text().splitlines(keepends=True)[:keep]))
    for folder in (to / "checkpoints").glob("step-*"):
        if int(folder.name.removeprefix("step-")) > keep:
            shutil.rmtree(folder)
    metrics = [json.loads(x) for x in (to / "metrics.jsonl").read_text().splitlines()]
    kept = [m for m in metrics if m["split"] == "dev" and m["step"] <= keep]
    (to / "metrics.jsonl").write_text("".join(json.dumps(m, sort_keys=True) + "\n" for m in kept))
    best = max(kept, key=lambda m: (m["accuracy"], -m["step"]))["step"] if kept else None
    if RunDir(to).tensors_step("best") != best:
        (to / "checkpoints" / "best.safetensors").unlink()
    return to


def assert_same_run(run: Path, reference: Path) -> None:
    for name in ("releases.jsonl", "private/releases.jsonl", "metrics.jsonl"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    for name in ("final", "best"):
        a = load_file(run / "checkpoints" / f"{name}.safetensors")
        b = load_file(reference / "checkpoints" / f"{name}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    ours = json.loads((run / "result.json").read_text())
    theirs = json.loads((reference / "result.json").read_text())
    assert ours["privacy"] == theirs["privacy"] and ours["metrics"] == theirs["metrics"]


def refused(argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and err.startswith("paczero: error:")
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- the lock


def launch(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "paczero", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_lines(proc: subprocess.Popen, path: Path, lines: int) -> None:
    deadline = time.monotonic() + 240
    while not path.exists() or path.read_bytes().count(b"\n") < lines:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run did not progress"
        time.sleep(0.01)


def test_a_second_resume_is_refused_with_the_holders_pid(reference, tmp_path):
    """Two `paczero resume` of one directory: the second is refused in one line naming the
    first's pid. The holder is stopped (SIGSTOP) once it holds the lock: it keeps the lock,
    and the CPU goes to the second."""
    run = stopped(reference, tmp_path / "run", keep=6)
    holder = launch("resume", str(run), "--quiet")
    try:
        deadline = time.monotonic() + 240
        while _lock_pid(run) != str(holder.pid):
            assert holder.poll() is None, holder.communicate()
            assert time.monotonic() < deadline, "the resume never took the lock"
            time.sleep(0.002)
        holder.send_signal(signal.SIGSTOP)
        other = launch("resume", str(run), "--quiet")
        _, err = other.communicate(timeout=240)
        assert other.returncode == 2
        assert err.strip() == (
            f"paczero: error: {run} is in use by process {holder.pid} (a paczero train or "
            "resume writing it); wait for it to end or stop it, then try again"
        )
    finally:
        holder.kill()  # SIGKILL ends a stopped process too
        holder.wait()
    # The kernel dropped the killed holder's lock: the run is free, and still consistent.
    again = RunDir(run)
    again.lock()
    assert _lock_pid(run) == str(os.getpid())
    again.unlock()
    assert not (run / ".lock").exists()
    RunDir(run).verify(private=True)


def _lock_pid(run: Path) -> str | None:
    try:
        return (run / ".lock").read_text().strip()
    except OSError:
        return None


def test_the_lock_is_released_by_a_finished_run(tmp_path):
    out = train("smoke", out=tmp_path / "run", overrides=[*SMALL, "train.steps=2"], progress=False)
    assert not (out.run_dir / ".lock").exists()
    run = RunDir(out.run_dir)
    run.lock()
    other = RunDir(out.run_dir)
    with pytest.raises(run_directory.UserError, match=f"in use by process {os.getpid()}"):
        other.lock()
    run.unlock()


# ---------------------------------------------------------------- identity


def test_a_private_dir_of_another_run_with_the_same_config_is_refused(tmp_path, capsys):
    same = [*SMALL, "train.steps=3", "mechanism.name=paczero-zpl", "mechanism.subsets=4"]
    a = train("smoke", out=tmp_path / "a", overrides=same, progress=False).run_dir
    b = train("smoke", out=tmp_path / "b", overrides=same, progress=False).run_dir
    assert (a / "config.yaml").read_bytes() == (b / "config.yaml").read_bytes()
    assert (
        json.loads((a / "run.json").read_text())["run_id"]
        != json.loads((b / "run.json").read_text())["run_id"]
    )
    (a / "result.json").unlink()
    shutil.rmtree(a / "private")
    shutil.copytree(b / "private", a / "private")
    err = refused(["resume", str(a)], capsys)
    assert "private/ belongs to a different run" in err


# ---------------------------------------------------------------- the logs


def _rewrite(path: Path, records: list[dict]) -> None:
    """Write records with a recomputed, valid hash chain (a careful forger)."""
    prev = ledger.GENESIS
    lines = []
    for record in records:
        record = {k: v for k, v in record.items() if k not in ("prev", "sha")}
        record["prev"] = prev
        record["sha"] = prev = ledger.record_sha(record)
        lines.append(ledger.dumps(record) + "\n")
    path.write_text("".join(lines))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def garbage(run: Path) -> None:
    lines = _lines(run / "releases.jsonl")
    lines[3] = "garbage\n"
    (run / "releases.jsonl").write_text("".join(lines))


def edit_coefficient(line: int):
    def damage(run: Path) -> None:
        lines = _lines(run / "releases.jsonl")
        record = json.loads(lines[line - 1])
        record["coeffs"][0] = -record["coeffs"][0] or 1.0
        lines[line - 1] = ledger.dumps(record) + "\n"
        (run / "releases.jsonl").write_text("".join(lines))

    return damage


def swap(run: Path) -> None:
    lines = _lines(run / "releases.jsonl")
    lines[4], lines[5] = lines[5], lines[4]
    (run / "releases.jsonl").write_text("".join(lines))


def duplicate(run: Path) -> None:
    lines = _lines(run / "releases.jsonl")
    (run / "releases.jsonl").write_text("".join(lines[:3] + lines[2:]))


def rechained_duplicate(run: Path) -> None:
    records = [json.loads(x) for x in _lines(run / "releases.jsonl")]
    _rewrite(run / "releases.jsonl", records[:3] + records[2:])


def foreign_checkpoint(run: Path) -> None:
    state = run / "checkpoints" / "step-0000005" / "state.json"
    data = json.loads(state.read_text())
    data["log"] = "f" * 64
    state.write_text(json.dumps(data))


def checkpoint_ahead(run: Path) -> None:
    for log in (run / "releases.jsonl", run / "private" / "releases.jsonl"):
        log.write_text("".join(_lines(log)[:4]))


def garbage_metrics(run: Path) -> None:
    lines = _lines(run / "metrics.jsonl")
    lines.insert(1, "{not json\n")
    (run / "metrics.jsonl").write_text("".join(lines))


def edit_private(run: Path) -> None:
    path = run / "private" / "releases.jsonl"
    lines = _lines(path)
    record = json.loads(lines[2])
    record["releases"][0]["secret_index"] = (record["releases"][0]["secret_index"] + 1) % 4
    lines[2] = ledger.dumps(record) + "\n"
    path.write_text("".join(lines))


def short_private(run: Path) -> None:
    path = run / "private" / "releases.jsonl"
    path.write_text("".join(_lines(path)[:7]))


DAMAGES = [
    # (id, damage, message, export refuses too)
    ("garbage-line", garbage, "releases.jsonl line 4 is not a JSON record", True),
    ("edited-coefficient", edit_coefficient(7), "releases.jsonl line 7 was edited", True),
    ("edited-last-line", edit_coefficient(10), "releases.jsonl line 10 was edited", True),
    ("out-of-order", swap, "releases.jsonl line 5 does not follow", True),
    ("duplicated", duplicate, "releases.jsonl line 4 does not follow", True),
    ("rechained-duplicate", rechained_duplicate, "line 4 holds step 2 where step 3", True),
    ("checkpoint-mismatch", foreign_checkpoint, "step-0000005 does not match releases", True),
    ("checkpoint-ahead", checkpoint_ahead, "step-0000005 is ahead of releases.jsonl", True),
    ("metrics-garbage", garbage_metrics, "metrics.jsonl line 2 is not a JSON record", True),
    ("private-edited", edit_private, "private/releases.jsonl line 3 was edited", False),
    ("private-short", short_private, "the public and private release logs disagree", False),
]


@pytest.mark.parametrize(
    ("damage", "message", "public"), [d[1:] for d in DAMAGES], ids=[d[0] for d in DAMAGES]
)
def test_a_damaged_run_is_refused_by_resume_and_export(
    reference, tmp_path, capsys, damage, message, public
):
    run = stopped(reference, tmp_path / "run", keep=10)
    damage(run)
    before = snapshot(run)
    assert message in refused(["resume", str(run)], capsys)
    export_args = ["export", str(run), "--to", str(tmp_path / "export"), "--step", "final"]
    if public:
        assert message in refused(export_args, capsys)
    else:  # export reads the public side only
        assert main(export_args) == 0
    assert not (tmp_path / "export").exists() or not public
    assert snapshot(run) == before  # verified before anything was touched


def test_a_torn_last_line_is_cut_and_the_run_resumes_exactly(reference, tmp_path, capsys):
    run = stopped(reference, tmp_path / "run", keep=7)
    with open(run / "releases.jsonl", "a") as log:
        log.write(_lines(reference / "releases.jsonl")[7][:40])  # step 7, torn
    with open(run / "private" / "releases.jsonl", "a") as log:
        log.write(_lines(reference / "private" / "releases.jsonl")[7])  # whole: one ahead
    assert main(["resume", str(run), "--quiet"]) == 0
    assert_same_run(run, reference)


# ---------------------------------------------------------------- theta_0


@pytest.mark.parametrize("keep", [0, 10], ids=["killed-writing-theta0", "theta0-lost-later"])
def test_every_rebuild_starts_from_theta0(reference, tmp_path, keep):
    """keep 0: a kill during the step-0 checkpoint write (no checkpoint, a temporary, no
    release); keep 10: the step-0 and step-5 checkpoints are gone and the dev-best model
    must be rebuilt from theta_0, not from the current weights."""
    run = stopped(reference, tmp_path / "run", keep=keep)
    for step in (0, 5):
        shutil.rmtree(run / "checkpoints" / f"step-{step:07d}", ignore_errors=True)
    (run / "checkpoints" / "best.safetensors").unlink(missing_ok=True)
    (run / "checkpoints" / ".step-x1y2").mkdir()
    (run / "checkpoints" / ".step-x1y2" / "trainable.safetensors").write_bytes(b"\0" * 10)
    from paczero.durable import resume

    resume(run, progress=False)
    assert_same_run(run, reference)
    assert (run / "checkpoints" / "step-0000000").is_dir()
    assert not (run / "checkpoints" / ".step-x1y2").exists()


def test_train_writes_theta0_before_the_first_step(tmp_path, monkeypatch):
    seen = []
    real = Trainer._run

    def first_step_sees(self):
        seen.append(self.run_dir.checkpoint_steps())
        return real(self)

    monkeypatch.setattr(Trainer, "_run", first_step_sees)
    train("smoke", out=tmp_path / "run", overrides=[*SMALL, "train.steps=1"], progress=False)
    assert seen == [[0]]


# ---------------------------------------------------------------- the finish


def test_a_kill_after_the_test_line_does_not_write_a_second_one(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    for name in ("result.json", "training.png"):
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(run / "model")  # killed between the test line and result.json
    from paczero.durable import resume

    resume(run, progress=False)
    tests = [x for x in _lines(run / "metrics.jsonl") if '"split": "test"' in x]
    assert len(tests) == 1
    assert_same_run(run, reference)


# ---------------------------------------------------------------- temporaries, checkpoints


def test_temporaries_are_cleaned_and_an_unreadable_checkpoint_is_passed_over(
    reference, tmp_path, capsys
):
    run = stopped(reference, tmp_path / "run", keep=11)
    newest = run / "checkpoints" / "step-0000010" / "trainable.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    (run / "checkpoints" / ".step-abcd").mkdir()
    (run / ".result.json.x7_4kq0a").write_text("{")  # tempfile's names: 8 random characters
    (run / "checkpoints" / ".best.safetensors.q1w2e3r4").write_bytes(b"")
    (run / ".notes").write_text("mine")  # not a temporary: kept
    capsys.readouterr()
    assert main(["resume", str(run), "--quiet"]) == 0
    err = capsys.readouterr().err
    notes = [x for x in err.splitlines() if x.startswith("paczero: note:")]
    assert any("checkpoint step-0000010 is unreadable" in x and "using step 5" in x for x in notes)
    assert sum("left by an interrupted write" in x for x in notes) == 3
    assert not list(run.rglob(".step-*")) and not (run / ".result.json.x7_4kq0a").exists()
    assert (run / ".notes").exists()
    assert_same_run(run, reference)


def test_an_unreadable_best_model_is_one_line_for_eval_and_rebuilt_by_resume(
    reference, tmp_path, capsys
):
    run = stopped(reference, tmp_path / "run", keep=9)
    best = run / "checkpoints" / "best.safetensors"
    shutil.copy(reference / "checkpoints" / "best.safetensors", best)
    best.write_bytes(best.read_bytes()[:64])
    # unfinished: no released model to evaluate yet (a finished run's eval replays the log)
    assert "has not finished" in refused(["eval", str(run)], capsys)
    assert main(["resume", str(run), "--quiet"]) == 0
    assert_same_run(run, reference)


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("private/mechanism.json", "mechanism.json is missing"),
        ("private/secret.json", "secret.json is missing"),
        ("run.json", "run.json not found"),
    ],
)
def test_missing_state_is_one_line(reference, tmp_path, capsys, remove, message):
    run = stopped(reference, tmp_path / "run", keep=6)
    (run / remove).unlink()
    assert message in refused(["resume", str(run)], capsys)


def test_damaged_private_state_is_one_line(reference, tmp_path, capsys):
    run = stopped(reference, tmp_path / "run", keep=6)
    (run / "private" / "mechanism.json").write_text('{"secret_index": ')
    assert "mechanism.json is damaged" in refused(["resume", str(run)], capsys)


# ---------------------------------------------------------------- full disk


def test_a_full_disk_mid_run_is_one_line_and_leaves_the_run_resumable(
    reference, tmp_path, capsys, monkeypatch
):
    real = ledger.JsonlLog.append

    def fills_at_step_6(self, record):
        public = self.path.name == "releases.jsonl" and "private" not in self.path.parts
        if public and record.get("step") == 6:
            self._file.write(b'{"cumulative": 0.0')  # part of the line, then no space
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return real(self, record)

    monkeypatch.setattr(ledger.JsonlLog, "append", fills_at_step_6)
    run = tmp_path / "run"
    err = refused(["train", "smoke", "--out", str(run), "--quiet", *sets(REF)], capsys)
    assert "No space left on device" in err and f"paczero resume {run}" in err
    monkeypatch.setattr(ledger.JsonlLog, "append", real)
    assert main(["resume", str(run), "--quiet"]) == 0
    assert_same_run(run, reference)


def test_a_full_disk_during_a_checkpoint_leaves_no_temporary(
    reference, tmp_path, capsys, monkeypatch
):
    real = run_directory.save_safetensors

    def fills(path, named, step):
        if step == 10 and path.name == "trainable.safetensors":
            Path(str(path) + ".partial").write_bytes(b"\0")  # what a failing write leaves
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, named, step)

    monkeypatch.setattr(run_directory, "save_safetensors", fills)
    run = tmp_path / "run"
    err = refused(["train", "smoke", "--out", str(run), "--quiet", *sets(REF)], capsys)
    assert "No space left on device" in err and "paczero resume" in err
    assert not list((run / "checkpoints").glob(".step-*"))
    monkeypatch.setattr(run_directory, "save_safetensors", real)
    assert main(["resume", str(run), "--quiet"]) == 0
    assert_same_run(run, reference)


# ---------------------------------------------------------------- signals


def test_any_second_signal_stops_at_once(tmp_path, capsys, monkeypatch):
    """After a first SIGINT (finish the step, checkpoint, stop) a second signal of either
    kind prints its line with the resume hint, then ends the process by its default action
    (here the re-sent signal is recorded instead of delivered)."""
    trainer = Trainer.__new__(Trainer)
    trainer._signal, trainer.run_dir = None, type("Run", (), {"path": tmp_path})()
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with trainer._signals():
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):  # the handler runs between bytecodes
            if trainer._signal is not None:
                break
            time.sleep(0.001)
        assert trainer._signal == signal.SIGINT
        handler, sent = signal.getsignal(signal.SIGTERM), []
        monkeypatch.setattr(os, "kill", lambda pid, signum: sent.append((pid, signum)))
        handler(signal.SIGTERM, None)
        assert sent == [(os.getpid(), signal.SIGTERM)]
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the default action next
        monkeypatch.undo()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("paczero: second signal: stopped at once")
    assert f"Resume with: paczero resume {tmp_path}" in err


def send_together(proc: subprocess.Popen, *signums: int) -> None:
    """Signals that the process's main thread takes in one go, in the order of their numbers
    (CPython runs the handlers of the signals pending at a check in that order): the process
    is stopped (and seen stopped), each signal is queued to its main thread (tgkill; a
    process-wide signal may be taken by another thread, whose handler can run between the
    two), then it continues. No interval between two signals for the process to outrun."""
    proc.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 240
    while Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0] != "T":
        assert time.monotonic() < deadline, "the process did not stop"
        time.sleep(0.001)
    libc = ctypes.CDLL(None, use_errno=True)
    for signum in signums:
        assert libc.tgkill(proc.pid, proc.pid, signum) == 0, os.strerror(ctypes.get_errno())
    proc.send_signal(signal.SIGCONT)


def test_sigint_then_sigterm_kills_the_step_and_the_run_stays_resumable(tmp_path):
    """The second signal must come while the first one's step runs: both are delivered at
    once (send_together), not 50 ms apart (the step, or the 1 ms between its log line and
    the stop check, could end first and the run stop with 130)."""
    run = tmp_path / "run"
    slow = ["data.num_train=200", "data.num_dev=16", "data.num_test=16", "train.steps=1000"]
    slow += ["model.device=cpu"]
    slow += ["train.batch_size=full", "train.eval_at_start=false", "zo.micro_batch=8"]
    proc = launch("train", "smoke", "--out", str(run), "--quiet", *sets(slow))
    wait_for_lines(proc, run / "releases.jsonl", 1)
    send_together(proc, signal.SIGINT, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGTERM  # stopped at once, not after the step (130)
    assert f"second signal: stopped at once; {run} is consistent" in err
    RunDir(run).verify(private=True)


# ---------------------------------------------------------------- names, chatter, exports


def test_default_run_names_are_unique_within_a_second(tmp_path, monkeypatch):
    cfg = load_config("smoke")
    assert len({default_run_dir(cfg) for _ in range(200)}) == 200
    with mock.patch("secrets.token_hex", side_effect=["aaaaaa", "aaaaaa", "bbbbbb"]):
        assert default_run_dir(cfg) != default_run_dir(cfg)  # a repeated draw is drawn again
    monkeypatch.chdir(tmp_path)
    quick = [*SMALL, "train.steps=1", "train.eval_at_start=false"]
    a = train("smoke", overrides=quick, progress=False).run_dir
    b = train("smoke", overrides=quick, progress=False).run_dir
    assert a != b and a.parent == b.parent == Path("runs")
    assert (tmp_path / a / "result.json").exists() and (tmp_path / b / "result.json").exists()


def test_an_unreachable_dp_epsilon_is_one_line_without_library_warnings(
    tmp_path, capfd, monkeypatch
):
    """dp-accounting logs ~200 absl warnings while it finds a target out of reach: none may
    reach the terminal, from the CLI or from the library (absl at its default level)."""
    import logging

    from paczero.privacy.accounting import calibrate_noise_multiplier

    absl = logging.getLogger("absl")
    monkeypatch.setattr(absl, "level", logging.WARNING)  # as outside the tests and the CLI
    seen = []
    handler = logging.Handler()
    handler.emit = seen.append
    absl.addHandler(handler)
    try:
        with pytest.raises(ValueError, match="out of reach"):
            calibrate_noise_multiplier(1e-9, 1e-5, 4 / 32, 300, accountant="pld")
        assert seen == []
        dp = ["mechanism.name=dpzero", "mechanism.epsilon=1e-9", "mechanism.clip=1"]
        dp += ["mechanism.expected_batch=4", *SMALL]
        capfd.readouterr()
        assert main(["train", "smoke", "--quiet", "--out", str(tmp_path / "r"), *sets(dp)]) == 2
    finally:
        absl.removeHandler(handler)
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "out of reach" in lines[0], err[-2000:]
    assert seen == [] and not (tmp_path / "r").exists()


def test_an_export_of_a_seed_built_model_evaluates_on_the_runs_base(tmp_path):
    quick = [*SMALL, "train.steps=4", "model.track=lora", "seed.public=5", "train.lr=0.05"]
    result = train("smoke", out=tmp_path / "run", overrides=quick, progress=False)
    info = export(result.run_dir, tmp_path / "export")
    saved = json.loads((tmp_path / "export" / "paczero_export.json").read_text())
    assert saved["seed_public"] == 5 and saved["model"]["name"] == "tiny-llama"
    assert saved["task"]["name"] == "sst2" and info["step"] == result.data["metrics"]["best_step"]
    data = ["data.source=synthetic", *SMALL]
    assert evaluate(tmp_path / "export", overrides=data)["accuracy"] == pytest.approx(
        result.test["accuracy"]
    )
    assert evaluate(result.run_dir, overrides=data)["accuracy"] == pytest.approx(
        result.test["accuracy"]
    )


# ---------------------------------------------------------------- divergence


def test_a_diverging_run_stops_consistent_and_resume_wants_a_changed_key(tmp_path, capsys):
    run = tmp_path / "run"
    huge = [*SMALL, "train.lr=3e38", "train.steps=20"]  # 1e38 stays finite (RMSNorm)
    err = refused(["train", "smoke", "--out", str(run), "--quiet", *sets(huge)], capsys)
    assert "training diverged at step 1 (the loss became non-finite)" in err
    assert "the likely key is train.lr (3e+38)" in err and f"paczero resume {run}" in err
    done = RunDir(run).verify(private=True)
    assert len(done.records) == 1 and 1 in done.checkpoints
    assert "diverged at step 1" in refused(["resume", str(run)], capsys)
    assert "cannot change zo.eps" in refused(["resume", str(run), *sets(["zo.eps=0.1"])], capsys)


def test_a_perturbation_that_diverges_at_once_leaves_nothing(tmp_path, capsys):
    args = ["train", "smoke", "--out", str(tmp_path / "run"), "--quiet"]
    err = refused(
        [*args, *sets([*SMALL, "zo.eps=3e38", "train.eval_at_start=false", "train.steps=20"])],
        capsys,
    )
    assert "diverged at step 0" in err and "zo.eps" in err and "was removed" in err
    assert not (tmp_path / "run").exists()


def test_a_run_that_diverged_continues_with_a_changed_learning_rate(tmp_path, capsys, monkeypatch):
    """A transient blow-up at step 3 (as a float16 overflow would give): the run stops
    checkpointed at step 3; resume with a new train.lr continues from there."""
    real = trainer_module.pool_losses
    calls = {"n": 0}

    def blows_up_once(model, task, encoded, indices, micro_batch, world=None, **kw):
        out = real(model, task, encoded, indices, micro_batch, *([world] if world else []))
        calls["n"] += 1
        if calls["n"] == 7:  # the first forward pass of step 3 (two per step)
            out[0] = float("nan")
        return out

    monkeypatch.setattr(trainer_module, "pool_losses", blows_up_once)
    run = tmp_path / "run"
    quick = [*SMALL, "train.steps=6", "train.eval_at_start=false", "train.lr=0.002"]
    err = refused(["train", "smoke", "--out", str(run), "--quiet", *sets(quick)], capsys)
    assert "diverged at step 3" in err
    assert (run / "checkpoints" / "step-0000003").is_dir() and (run / "diverged.json").exists()
    assert main(["resume", str(run), "--quiet", *sets(["train.lr=0.001"])]) == 0
    records = [json.loads(x) for x in _lines(run / "releases.jsonl")]
    assert [r["step"] for r in records] == list(range(6))
    assert [r["lr"] for r in records] == [0.002] * 3 + [0.001] * 3
    assert load_config(str(run / "config.yaml")).train.lr == 0.001
    changes = json.loads((run / "run.json").read_text())["changes"]
    assert changes == [{"from_step": 3, "set": {"train.lr": 0.001}}]
    assert not (run / "diverged.json").exists()
