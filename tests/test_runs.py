"""Run directory and the write-ahead ledger."""

import json
import stat

import pytest
import torch

from paczero.config import RunConfig
from paczero.errors import UserError
from paczero.privacy.ledger import JsonlLog, read_jsonl
from paczero.privacy.randomness import RandomStream, public_stream, secret_stream, tensor_seed
from paczero.runs import RunDir, check_new_run_dir, open_run


def test_ledger_appends_whole_lines_and_survives_a_torn_tail(tmp_path):
    path = tmp_path / "releases.jsonl"
    with JsonlLog(path, durable=True) as log:
        log.append({"step": 0, "coeffs": [1.0]})
        log.append({"step": 1, "coeffs": [-1.0]})
    with open(path, "a") as handle:
        handle.write('{"step": 2, "coe')  # a crash mid-write
    assert [r["step"] for r in read_jsonl(path)] == [0, 1]


def test_ledger_refuses_nan(tmp_path):
    with JsonlLog(tmp_path / "x.jsonl") as log, pytest.raises(ValueError):
        log.append({"charge": float("nan")})


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


def test_streams_are_counter_based_and_separate():
    public = public_stream(0)
    a = public.generator("direction", 3, 0).integers(1 << 62)
    b = public.generator("direction", 3, 0).integers(1 << 62)
    c = public.generator("direction", 3, 1).integers(1 << 62)
    assert a == b and a != c
    assert public.seed("direction", 3, 0) == public.seed("direction", 3, 0)
    assert public.seed("direction", 3, 0) != public.seed("direction", 4, 0)
    # a secret stream with the same number as the public seed is still a different stream
    assert RandomStream(0, "secret").seed("x") != public.seed("x")
    s1, src1 = secret_stream(None)
    s2, _ = secret_stream(None)
    assert src1 == "os-entropy" and s1.root != s2.root
    assert s1.root.bit_length() > 64  # 128-bit entropy, not guessable from a small seed
    with pytest.warns(UserWarning, match="seed.secret"):
        _, src = secret_stream(7)
    assert src == "seeded"
    assert "secret" in repr(s1) and str(s1.root) not in repr(s1)
    assert tensor_seed(1, 0) != tensor_seed(1, 1) != tensor_seed(2, 0)
