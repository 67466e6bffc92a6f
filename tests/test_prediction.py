"""`paczero predict` and the per-row predictions every run saves (issue #25 item 1): rows
with only the prompt's fields; classification writes each label's probability, generation
the answer; a run's dev and test predictions land under private/ when their rows come from
the pool's own source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paczero.cli import main
from paczero.prediction import predict

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QUICK = ["model.name=tiny-llama", "train.steps=2", "train.eval_at_start=false", "model.device=cpu"]
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def sets(*items: str) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def tickets_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tickets") / "run"
    argv = ["train", str(EXAMPLES / "tickets.yaml"), "--out", str(out), "--quiet"]
    assert main([*argv, *sets(*QUICK)]) == 0
    return out


@pytest.fixture
def new_rows(tmp_path) -> Path:
    path = tmp_path / "new.csv"
    path.write_text(
        "id,text\nn1,My card was charged twice.\nn2,The app crashes on start.\n"
        "n3,Do you offer a discount for teams?\n"
    )
    return path


def test_predict_labels_rows_without_a_label_column(tickets_run, new_rows, tmp_path, capsys):
    out = tmp_path / "predictions.jsonl"
    argv = ["predict", str(tickets_run), "--data", str(new_rows), "--out", str(out)]
    assert main(argv) == 0
    assert "wrote 3 predictions" in capsys.readouterr().out
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row"] for r in records] == [1, 2, 3]
    assert [r["input"]["id"] for r in records] == ["n1", "n2", "n3"]  # every column travels
    for record in records:
        probs = record["probabilities"]
        assert set(probs) == {"billing", "technical", "sales"}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert record["prediction"] == max(probs, key=probs.get)


def test_predict_in_python_matches_the_run_evaluation(tickets_run):
    dev = EXAMPLES / "tickets-dev.csv"
    records = predict(tickets_run, dev)  # the labelled dev file: its label column is ignored
    saved = (tickets_run / "predictions" / "dev.jsonl").read_text().splitlines()
    by_text = {json.loads(x)["input"]["text"]: json.loads(x) for x in saved}
    assert by_text, "the run saved its dev predictions"
    for record in records:
        if record["input"]["text"] in by_text:  # dev-best model = what predict loads
            assert record["prediction"] == by_text[record["input"]["text"]]["prediction"]


def test_a_run_saves_per_row_predictions_where_their_source_says(tickets_run):
    # tickets-dev.csv is the public dev file (dev and test carved from it): public folder
    for split in ("dev", "test"):
        rows = [json.loads(x) for x in (tickets_run / "predictions" / f"{split}.jsonl").open()]
        assert rows and all({"prediction", "label", "correct", "input"} <= set(r) for r in rows)
        accuracy = sum(r["correct"] for r in rows) / len(rows)
        metrics = [json.loads(x) for x in (tickets_run / "metrics.jsonl").open()]
        logged = [m for m in metrics if m["split"] == split]
        if split == "test":
            assert accuracy == pytest.approx(logged[-1]["accuracy"])
    assert not list((tickets_run / "private").glob("predictions-*"))


def test_rows_carved_from_the_pool_source_are_predicted_under_private(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "smoke", "--out", str(out), "--quiet"]
    small = ["data.num_train=16", "data.num_dev=8", "data.num_test=8", "train.steps=1"]
    assert main([*argv, *sets(*small, "train.batch_size=full")]) == 0
    private = out / "private" / "predictions-dev.jsonl"  # SST-2 dev: carved from train
    assert private.exists() and oct(private.stat().st_mode & 0o777) == "0o600"
    assert (out / "predictions" / "test.jsonl").exists()  # SST-2 test: the validation split
    assert not (out / "predictions" / "dev.jsonl").exists()


def test_predict_generates_answers_zero_shot(tmp_path):
    rows = tmp_path / "questions.jsonl"
    rows.write_text('{"prompt": "What is the capital of Peru?"}\n{"prompt": "And Chile?"}\n')
    task = f"task.file={EXAMPLES / 'qa-task.yaml'}"
    records = predict("tiny-llama", rows, overrides=[task, "model.track=full"])
    assert len(records) == 2 and all(isinstance(r["prediction"], str) for r in records)
    assert records[0]["input"] == {"prompt": "What is the capital of Peru?"}


def test_predict_refuses_bad_input_in_one_line_before_loading(tickets_run, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,body\n1,hello\n")
    assert main(["predict", str(tickets_run), "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "has no column 'text'" in err and len(err.splitlines()) == 1
    taken = tmp_path / "taken.jsonl"
    taken.write_text("keep me\n")
    good = EXAMPLES / "tickets-dev.csv"
    assert main(["predict", str(tickets_run), "--data", str(good), "--out", str(taken)]) == 2
    assert "exists" in capsys.readouterr().err and taken.read_text() == "keep me\n"
    missing = tmp_path / "none.csv"
    assert main(["predict", str(tickets_run), "--data", str(missing)]) == 2
    assert "not found" in capsys.readouterr().err


def test_eval_writes_each_rows_prediction_beside_its_label(tickets_run, tmp_path, capsys):
    out = tmp_path / "test-rows.jsonl"
    argv = ["eval", str(tickets_run), "--json", "--out", str(out), "--set", "model.device=cpu"]
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == metrics["examples"] and set(rows[0]["input"]) == {"text"}
    assert sum(r["correct"] for r in rows) / len(rows) == pytest.approx(metrics["accuracy"])
    assert main(argv) == 2  # never over an existing file
    assert "exists" in capsys.readouterr().err
