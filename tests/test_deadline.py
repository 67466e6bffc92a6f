"""--until DURATION: a run or a sweep stops cleanly before its deadline, exits RESUMABLE, and
the same command again continues to the result of an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
import yaml

from paczero import deadline
from paczero.cli import main
from paczero.deadline import RESUMABLE, parse_duration
from paczero.errors import UserError
from paczero.trainer import Trainer, train

from sizes import small_run

KEYS = small_run("train.steps=12", "train.eval_every=4", "seed.secret=3")


def sets(overrides):
    return [arg for item in overrides for arg in ("--set", item)]


def test_durations_parse_and_bad_ones_are_one_line_refusals():
    assert parse_duration("90") == parse_duration("90s") == 90
    assert parse_duration("10m") == 600 and parse_duration("1h30m") == 5400
    assert parse_duration("2.5m") == 150
    for bad in ("", "soon", "-5s", "0s", "10 minutes"):
        with pytest.raises(UserError, match="--until"):
            parse_duration(bad)
    assert deadline.margin(60) == 10 and deadline.margin(540) == 54 and deadline.margin(1e5) == 60


def _deadline_at(monkeypatch, step):
    """The deadline's timer fires while step ``step`` runs (as fire() does)."""
    real = Trainer.log_release

    def log_release(self, result):
        real(self, result)
        if result.step + 1 == step:
            deadline._reached.set()
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Trainer, "log_release", log_release)


def test_train_until_stops_resumable_and_the_same_command_continues(tmp_path, monkeypatch, capsys):
    reference = train("smoke", out=tmp_path / "reference", overrides=KEYS, progress=False)
    command = ["train", "smoke", "--quiet", "--out", str(tmp_path / "run"), *sets(KEYS)]
    command += ["--until", "1h"]
    for stop_at in (5, 9):  # two slices stopped by their deadline, then the rest
        _deadline_at(monkeypatch, stop_at)
        assert main(command) == RESUMABLE
        monkeypatch.undo()
        assert "run the same command again to continue" in capsys.readouterr().err
        assert not (tmp_path / "run" / "result.json").exists()
    assert main(command) == 0
    run = tmp_path / "run"
    for name in ("releases.jsonl", "metrics.jsonl"):
        assert (run / name).read_bytes() == (reference.run_dir / name).read_bytes()
    assert main(command) == 0  # finished: nothing to do
    assert "is finished" in capsys.readouterr().err
    other = [*command[:-2], "--set", "train.lr=0.5", "--until", "1h"]
    assert main(other) == 2  # another config in that folder: refused
    assert "another config" in capsys.readouterr().err


def test_a_deadline_during_set_up_stops_at_the_first_step(tmp_path, monkeypatch):
    """The signal came before the run's own handler: the run checks at its next step."""
    deadline._reached.clear()
    real = Trainer.__init__

    def init(self, *args, **kw):
        real(self, *args, **kw)
        deadline._reached.set()  # as the set-up's handler does on the timer's SIGTERM

    monkeypatch.setattr(Trainer, "__init__", init)
    keys = [*KEYS, "train.eval_at_start=false", "train.eval_every=0"]
    command = ["train", "smoke", "--quiet", "--out", str(tmp_path / "run"), *sets(keys)]
    assert main([*command, "--until", "1h"]) == RESUMABLE
    lines = (tmp_path / "run" / "releases.jsonl").read_text().splitlines()
    assert len(lines) == 1


def test_a_real_deadline_is_kept(tmp_path):
    """A long run stopped by the clock: the process ends before its deadline (counted from
    its start, set-up included), with the resumable exit status."""
    keys = small_run("train.steps=100000", "train.checkpoints=none", "train.eval_every=0")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "paczero", "train", "smoke", "--quiet", "--until", "30s"]
        + ["--out", str(tmp_path / "run"), *sets(keys)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert time.monotonic() - started < 30
    assert done.returncode == RESUMABLE, done.stderr
    assert "stopped before the --until deadline" in done.stderr


def test_a_sweep_stopped_by_its_deadline_continues_to_the_same_table(tmp_path, monkeypatch):
    from paczero.studies.tables import table

    spec = {
        "base": "smoke",
        "set": {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in KEYS)},
        "seeds": [0],
        "cells": [
            {"name": "zpl", "set": {"mechanism.name": "paczero-zpl"}},
            {"name": "mezo", "set": {"mechanism.name": "mezo"}},
        ],
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    reference = ["sweep", str(path), "--out", str(tmp_path / "reference")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(reference) == 0
        command = ["sweep", str(path), "--out", str(tmp_path / "sliced"), "--until", "1h"]
        _deadline_at(monkeypatch, 6)
        assert main(command) == RESUMABLE  # in the first run
        monkeypatch.undo()
        assert main(command) == 0
    ours, theirs = (json.loads(table(tmp_path / d, fmt="json")) for d in ("sliced", "reference"))
    for row in ours["rows"] + theirs["rows"]:
        row.pop("step_s")  # a wall-clock figure
    assert ours["rows"] == theirs["rows"]


def test_a_packed_sweep_continues_in_another_folder_to_the_same_table(tmp_path, monkeypatch):
    """paczero pack: the sweep without tensors, private/ owner-only; sweep --from continues
    it elsewhere (log-only resume of the run the deadline cut)."""
    import tarfile

    from paczero.studies.tables import table

    spec = {
        "base": "smoke",
        "set": {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in KEYS)},
        "seeds": [0, 1],
        "cells": [{"name": "zpl", "set": {"mechanism.name": "paczero-zpl"}}],
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["sweep", str(path), "--out", str(tmp_path / "reference")]) == 0
        here = ["sweep", str(path), "--out", str(tmp_path / "here"), "--until", "1h"]
        _deadline_at(monkeypatch, 9)
        assert main(here) == RESUMABLE  # seed 0 cut at step 9, seed 1 not begun
        monkeypatch.undo()
        pack = tmp_path / "moved" / "study.tar.gz"
        assert main(["pack", str(tmp_path / "here"), "--to", str(pack)]) == 0
        assert main(["pack", str(tmp_path / "here"), "--to", str(pack)]) == 2  # no overwrite
        assert os.stat(pack).st_mode & 0o077 == 0
        with tarfile.open(pack) as tar:
            names = tar.getnames()
            modes = {m.name: m.mode for m in tar.getmembers()}
        assert not [n for n in names if "checkpoints" in n or n.endswith(".safetensors")]
        assert any(n.endswith("zpl/seed-0/private/secret.json") for n in names)
        assert all(mode & 0o077 == 0 for name, mode in modes.items() if "/private/" in name)
        there = ["sweep", str(path), "--out", str(tmp_path / "there"), "--from", str(pack)]
        assert main(there) == 0
        assert main(there) == 2  # the folder exists now: --from is refused
    run = tmp_path / "there" / "zpl" / "seed-0"
    assert os.stat(run / "private").st_mode & 0o077 == 0
    reference = tmp_path / "reference" / "zpl" / "seed-0"
    assert (run / "releases.jsonl").read_bytes() == (reference / "releases.jsonl").read_bytes()
    ours, theirs = (json.loads(table(tmp_path / d, fmt="json")) for d in ("there", "reference"))
    for row in ours["rows"] + theirs["rows"]:
        row.pop("step_s")  # a wall-clock figure
    assert ours["rows"] == theirs["rows"]
