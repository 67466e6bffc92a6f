"""A run's config.yaml is part of its identity (issue 36 item 2): an edit by hand is refused
in one line naming the key; ``resume --set`` stays the way to change what may change."""

from __future__ import annotations

import shutil

import pytest
import yaml

from paczero.cli import main

from sizes import sets, small_run

SMALL = small_run("train.steps=4", "train.batch_size=8", "train.eval_every=2")


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A finished run made unfinished (as after a kill at its end): resumable."""
    out = tmp_path_factory.mktemp("edits") / "run"
    assert main(["train", "smoke", "--out", str(out), "--quiet", *sets(*SMALL)]) == 0
    (out / "result.json").unlink()
    return out


def _edit(run, section: str, key: str, value) -> None:
    path = run / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data[section][key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [("data", "seed", 7), ("train", "lr", 0.5), ("train", "steps", 2), ("zo", "eps", 0.01)],
)
def test_a_hand_edited_config_is_refused_naming_the_key(
    stopped, tmp_path, capsys, section, key, value
):
    run = tmp_path / "run"
    shutil.copytree(stopped, run)
    _edit(run, section, key, value)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for argv in (
        ["resume", str(run), "--quiet"],
        ["export", str(run), "--to", str(tmp_path / "x")],
    ):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and f"{section}.{key}" in err and "edited" in err, err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_resume_set_changes_the_config_and_the_identity_together(stopped, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(stopped, run)
    assert main(["resume", str(run), "--quiet", *sets("train.lr=0.002")]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["lr"] == 0.002
    assert main(["export", str(run), "--to", str(tmp_path / "x"), "--step", "final"]) == 0
