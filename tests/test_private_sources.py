"""Rows of the private source never reach public files (issue 36, items 1, 4, 5).

A dev or test source that is the pool's own file (the same path, a symlink to it, or a
copy with the same bytes) counts as the pool's source: its rows and predictions go under
private/ and result.json says where they came from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from paczero.cli import main

from sizes import sets

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QUICK = ["model.name=tiny-llama", "train.steps=2", "model.device=cpu", "train.eval_every=1"]
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _train(out: Path, *extra: str) -> dict:
    argv = ["train", str(EXAMPLES / "tickets.yaml"), "--out", str(out), "--quiet"]
    assert main([*argv, *sets(*QUICK, *extra)]) == 0
    return json.loads((out / "result.json").read_text())


@pytest.mark.parametrize("how", ["same-path", "symlink", "copy"])
def test_a_dev_file_that_is_the_pool_file_counts_as_the_pool_source(tmp_path, how):
    train = tmp_path / "tickets.csv"
    shutil.copy(EXAMPLES / "tickets.csv", train)
    dev = {"same-path": train, "symlink": tmp_path / "link.csv", "copy": tmp_path / "copy.csv"}[how]
    if how == "symlink":
        dev.symlink_to(train)
    elif how == "copy":
        shutil.copy(train, dev)
    result = _train(tmp_path / "run", f"data.train={train}", f"data.dev={dev}")
    data = result["privacy"]["data"]
    assert data["dev_from_pool_source"] is True
    assert data["test_from_pool_source"] is True  # carved from the same file
    run = tmp_path / "run"
    assert not (run / "predictions").exists()
    assert (run / "private" / "predictions-dev.jsonl").exists()
    assert "pool's own source" in data["note"] and data["select"] == "final"


def test_a_test_file_that_is_the_pool_file_counts_too(tmp_path):
    train = tmp_path / "tickets.csv"
    shutil.copy(EXAMPLES / "tickets.csv", train)
    dev = EXAMPLES / "tickets-dev.csv"
    result = _train(
        tmp_path / "run", f"data.train={train}", f"data.dev={dev}", f"data.test={train}"
    )
    data = result["privacy"]["data"]
    assert (data["dev_from_pool_source"], data["test_from_pool_source"]) == (False, True)
    assert not (tmp_path / "run" / "predictions" / "test.jsonl").exists()
    assert (tmp_path / "run" / "private" / "predictions-test.jsonl").exists()


CARVED = ["data.dev=null", "data.num_train=4", "data.num_dev=3", "data.num_test=3"]


@pytest.fixture(scope="module")
def carved_run(tmp_path_factory) -> Path:
    """Dev and test carved from data.train: rows of the private source."""
    out = tmp_path_factory.mktemp("carved") / "run"
    _train(out, *CARVED)
    return out


def test_eval_out_of_private_rows_is_yours_only_and_says_so(carved_run, tmp_path, capsys):
    out = tmp_path / "dev.jsonl"
    argv = [
        "eval",
        str(carved_run),
        "--split",
        "dev",
        "--out",
        str(out),
        "--set",
        "model.device=cpu",
    ]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "private" in err and str(out) in err
    assert out.stat().st_mode & 0o777 == 0o600
    public = tmp_path / "public.jsonl"  # a separate dev file's rows are public
    argv = ["eval", str(carved_run), "--split", "dev", "--out", str(public)]
    argv += sets("model.device=cpu", f"data.dev={EXAMPLES / 'tickets-dev.csv'}")
    assert main(argv) == 0
    assert public.stat().st_mode & 0o777 == 0o644


def test_dev_rows_of_the_private_source_pick_nothing_by_default(carved_run, tmp_path):
    """Item 5: the released model is the final one; the dev metrics stay in private/."""
    result = json.loads((carved_run / "result.json").read_text())
    assert result["config"]["train"]["select"] == "final"
    metrics = result["metrics"]
    assert metrics["dev_history"] == [] and metrics["dev_best"] is None
    assert metrics["best_step"] == 2  # the tested, released model: the final step
    public = [json.loads(x) for x in (carved_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["split"] for m in public] == ["test"] and public[0]["step"] == 2
    private = carved_run / "private" / "metrics-dev.jsonl"
    assert private.stat().st_mode & 0o777 == 0o600
    assert [json.loads(x)["step"] for x in private.read_text().splitlines()] == [0, 1, 2]
    assert not (carved_run / "checkpoints" / "best.safetensors").exists()
    note = result["privacy"]["data"]["note"]
    assert "final" in note and "private/" in note
    assert main(["export", str(carved_run), "--to", str(tmp_path / "x")]) == 0
    assert json.loads((tmp_path / "x" / "paczero_export.json").read_text())["step"] == 2


def test_dev_best_on_private_dev_rows_is_an_opt_in_the_report_qualifies(tmp_path):
    result = _train(tmp_path / "run", *CARVED, "train.select=dev-best")
    assert [p["step"] for p in result["metrics"]["dev_history"]] == [0, 1, 2]
    assert "not covered" in result["privacy"]["data"]["note"]


def test_a_separate_dev_file_keeps_the_dev_best_model():
    from paczero.config import load_config

    assert load_config(str(EXAMPLES / "tickets.yaml")).train.select == "dev-best"
    carved = load_config(str(EXAMPLES / "tickets.yaml"), CARVED)
    assert carved.train.select == "final"
    assert load_config("smoke").train.select == "dev-best"  # a public benchmark's split


def test_a_non_finite_private_dev_loss_does_not_stop_the_run(tmp_path, monkeypatch):
    """Where a run ends is public: a stop caused by private dev rows would publish them."""
    from paczero.tasks.classification import ClassificationTask

    real = ClassificationTask.evaluate_rows

    def nan_dev(self, model, rows, *args, **kwargs):
        metrics, scored = real(self, model, rows, *args, **kwargs)
        if len(rows) == 3:  # the carved dev split (num_dev=3; num_test=2 here)
            metrics = {**metrics, "loss": float("nan")}
        return metrics, scored

    monkeypatch.setattr(ClassificationTask, "evaluate_rows", nan_dev)
    result = _train(tmp_path / "run", *CARVED, "data.num_test=2")
    assert result["metrics"]["best_step"] == 2  # ran to the end, the final model released
    assert not (tmp_path / "run" / "diverged.json").exists()
    private = tmp_path / "run" / "private" / "metrics-dev.jsonl"
    assert [json.loads(x)["loss"] for x in private.read_text().splitlines()] == [None] * 3
