"""`paczero eval` targets: a base model zero-shot, with its predictions; what is refused."""

import json

import pytest

from paczero.errors import UserError
from paczero.evaluation import _export_config, evaluate, load_target

from sizes import small_run

SYNTHETIC = small_run("data.source=synthetic")


def test_a_base_model_is_evaluated_zero_shot_with_a_row_per_prediction(tmp_path):
    out = tmp_path / "rows.jsonl"
    metrics = evaluate("tiny-llama", split="dev", overrides=SYNTHETIC, out=out)
    assert metrics["split"] == "dev" and metrics["examples"] == 16
    assert 0.0 <= metrics["accuracy"] <= 1.0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 16 and all("sentence" in json.dumps(row) for row in rows)
    with pytest.raises(UserError, match="exists"):  # a predictions file is never overwritten
        evaluate("tiny-llama", split="dev", overrides=SYNTHETIC, out=out)


def test_a_folder_without_a_run_an_export_or_a_model_is_one_line(tmp_path):
    with pytest.raises(UserError, match="holds no run .* export .* or Hugging Face model"):
        load_target(tmp_path)


def test_an_export_rebuilds_its_base_as_the_run_built_it(tmp_path):
    info = {"track": "lora", "base_model": "tiny-llama", "seed_public": 3, "task": {}}
    data = _export_config(tmp_path, info)
    model = {"name": "tiny-llama", "track": "full", "dtype": "float32"}
    assert data["model"] == model  # the base loads whole, in what "auto" gave the run
    assert data["seed"] == {"public": 3}
    merged = _export_config(tmp_path, {**info, "track": "full"})
    assert merged["model"]["name"] == str(tmp_path) and merged["model"]["dtype"] == "auto"
    with pytest.raises(UserError, match="paczero_export.json is damaged"):
        _export_config(tmp_path, {"track": "lora"})
