"""`paczero predict` on what a user is handed (issue 36 items 14 and 18): an export folder,
merged or adapter, from the CLI and from Python, gives the run's own predictions; an export
missing its weights is named as such; a labelled file also reports the accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import paczero
from paczero.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QUICK = ["model.name=tiny-llama", "train.steps=2", "train.eval_at_start=false", "model.device=cpu"]
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """A tickets run (tiny model, LoRA) and its adapter and merged exports of the same step."""
    root = tmp_path_factory.mktemp("exports")
    run = root / "run"
    sets = [arg for item in QUICK for arg in ("--set", item)]
    assert main(["train", str(EXAMPLES / "tickets.yaml"), "--out", str(run), "--quiet", *sets]) == 0
    paczero.export(run, root / "adapter")
    paczero.export(run, root / "merged", merge=True)
    return {"run": run, "adapter": root / "adapter", "merged": root / "merged"}


@pytest.fixture
def new_rows(tmp_path) -> Path:
    path = tmp_path / "new.csv"
    path.write_text("id,text\nn1,My card was charged twice.\nn2,The app crashes on start.\n")
    return path


def _labels(records: list[dict]) -> list[tuple[str, dict]]:
    return [(r["prediction"], r["probabilities"]) for r in records]


@pytest.mark.parametrize("kind", ["adapter", "merged"])
def test_predict_on_an_export_folder_gives_the_runs_predictions(exported, kind, new_rows, capsys):
    expected = paczero.predict(exported["run"], new_rows)
    assert main(["predict", str(exported[kind]), "--data", str(new_rows)]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["input"]["id"] for r in printed] == ["n1", "n2"]
    records = paczero.predict(exported[kind], data=new_rows)
    for got in (printed, records):
        assert [r["prediction"] for r in got] == [r["prediction"] for r in expected]
        for mine, theirs in zip(got, expected, strict=True):
            for label, p in theirs["probabilities"].items():
                assert mine["probabilities"][label] == pytest.approx(p, abs=1e-4)


@pytest.mark.parametrize(
    ("kind", "weights"), [("adapter", "adapter_model.safetensors"), ("merged", "model.safetensors")]
)
def test_an_export_without_its_weights_file_is_named(
    exported, kind, weights, new_rows, tmp_path, capsys
):
    import shutil

    broken = tmp_path / kind
    shutil.copytree(exported[kind], broken)
    (broken / weights).unlink()
    assert main(["predict", str(broken), "--data", str(new_rows)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and weights in err and "data.train" not in err


def test_predict_on_a_labelled_file_reports_its_accuracy(exported, tmp_path, capsys):
    dev = EXAMPLES / "tickets-dev.csv"
    out = tmp_path / "p.jsonl"
    assert main(["predict", str(exported["run"]), "--data", str(dev), "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    right = sum(r["prediction"] == r["input"]["team"] for r in records)
    captured = capsys.readouterr()
    assert f"accuracy {right / len(records):.4f} ({right} of {len(records)} rows" in captured.err
    unlabelled = tmp_path / "u.csv"
    unlabelled.write_text("id,text\nn1,hello\n")
    assert main(["predict", str(exported["run"]), "--data", str(unlabelled)]) == 0
    assert "accuracy" not in capsys.readouterr().err


def test_the_export_description_holds_no_path_of_the_task_file(exported):
    for kind in ("adapter", "merged"):
        text = (exported[kind] / "paczero_export.json").read_text()
        assert "tickets-task.yaml" not in text and str(EXAMPLES) not in text
        assert json.loads(text)["task"]["label_words"]["billing"] == "Billing"
