"""The run directory: layout, private permissions, a used directory refused."""

import json
import stat

import pytest
import torch

from paczero.config import RunConfig
from paczero.errors import UserError
from paczero.runs import RunDir, check_new_run_dir, open_run


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
