"""The run directory: layout, private permissions, a used directory refused."""

import json
import os
import stat
import subprocess
import sys

import pytest
import torch

from paczero.config import RunConfig
from paczero.errors import UserError
from paczero.runs import RunDir, RunLock, check_new_run_dir, killed_in_create, open_run


def test_run_dir_layout_and_private_permissions(tmp_path):
    cfg = RunConfig()
    run = RunDir.create(tmp_path / "run", cfg)
    assert (run.path / "config.yaml").read_text() == cfg.to_yaml()
    assert stat.S_IMODE(run.private_dir.stat().st_mode) == 0o700
    run.write_private("secret.json", {"root": 5})
    assert stat.S_IMODE((run.private_dir / "secret.json").stat().st_mode) == 0o600
    with run.open_private_releases() as log:
        log.append({"step": 0})
    assert stat.S_IMODE((run.private_dir / "releases.jsonl").stat().st_mode) == 0o600
    named = [("a.weight", torch.arange(6.0).reshape(2, 3))]
    run.save_tensors("best", named)
    assert torch.equal(run.load_tensors("best")["a.weight"], named[0][1])
    run.write_result({"ok": True})
    assert json.loads((run.path / "result.json").read_text()) == {"ok": True}
    assert open_run(run.path).path == run.path


def test_a_used_directory_is_refused(tmp_path):
    RunDir.create(tmp_path / "run", RunConfig())
    with pytest.raises(UserError, match="already holds a run"):
        check_new_run_dir(tmp_path / "run")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="already holds files"):
        check_new_run_dir(tmp_path / "other")
    with pytest.raises(UserError, match="not a paczero run"):
        open_run(tmp_path / "other")


KILL_IN_CREATE = """
import os, sys
from pathlib import Path
import paczero.runs.directory as directory
import paczero.runs.files as files
from paczero.config import RunConfig

write = files.atomic_write_bytes
def killed_at(path, data, mode=None):
    if path.name == sys.argv[2]:
        Path(path.parent, "." + path.name + ".abcd1234").write_bytes(data[:3])  # half written
        os._exit(9)  # as SIGKILL: no cleanup runs, the kernel drops the lock
    write(path, data, mode)
files.atomic_write_bytes = directory.atomic_write_bytes = killed_at  # run.json, config.yaml
directory.RunDir.create(Path(sys.argv[1]), RunConfig())
"""


@pytest.mark.parametrize("file", ["run.json", "config.yaml"])
def test_a_process_killed_inside_create_leaves_a_folder_known_as_such(tmp_path, file):
    """A sweep's worker killed while it made its run's folder left files but no
    config.yaml, and the sweep's rerun refused the run as 'blocked' (found under load)."""
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", KILL_IN_CREATE, str(run), file])
    assert (
        killed.returncode == 9 and (run / ".lock").exists() and not (run / "config.yaml").exists()
    )
    assert killed_in_create(run)

    holder = RunLock(run)
    holder.acquire()  # a live process inside create: not debris
    assert not killed_in_create(run)
    holder.release()
    (run / ".lock").write_text("")  # the killed process's lock file, unheld

    (run / "checkpoints" / "step-0000001").mkdir()
    assert not killed_in_create(run)
    os.rmdir(run / "checkpoints" / "step-0000001")
    (run / "notes.txt").write_text("mine")
    assert not killed_in_create(run)
    os.remove(run / "notes.txt")
    assert killed_in_create(run)
    RunDir.create(tmp_path / "whole", RunConfig())
    assert not killed_in_create(tmp_path / "whole")
