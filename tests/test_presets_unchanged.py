"""SST-2 and SQuAD are presets of the generic task types (issue #14), and their losses,
metrics, splits and whole training runs are what they were before the change.

``tests/data/presets-golden.json`` was written by ``compute()`` below at commit 7fb6427,
before the task types existed (``python tests/test_presets_unchanged.py``); the test
recomputes every value with the code as it is and compares them exactly: per-example
losses (float32, both the single-token and the one-sequence-per-option SST-2 paths, both
templates; SQuAD's teacher-forced CE and -F1), generated answers, evaluation metrics, the
seeded pool/dev/test rows, and the release logs and metrics of short training runs.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

GOLDEN = Path(__file__).with_name("data") / "presets-golden.json"
DATA_DIR = os.environ.get("PACZERO_DATA_DIR")

SST2_EXAMPLES = [
    {"sentence": "it 's a charming and often affecting journey . ", "label": 1},
    {"sentence": "unflinchingly bleak and desperate ", "label": 0},
    {"sentence": "the film was good ", "label": 1},
    {"sentence": "a dull , tedious mess of a movie that never finds its footing . ", "label": 0},
    {"sentence": "  wonderful ", "label": 1},
    {
        "sentence": "the plot is boring and the acting is weak , but the cast is fun " * 5,
        "label": 0,
    },
]
SQUAD_EXAMPLES = [
    {
        "id": "a",
        "title": "Super_Bowl_50",
        "context": "Super Bowl 50 was an American football game to determine the champion. ",
        "question": " Which NFL team represented the AFC? ",
        "answers": ["Denver Broncos", "Broncos"],
    },
    {
        "id": "b",
        "title": "Film",
        "context": " The film was great and the cast was fun.",
        "question": "Who was fun?",
        "answers": ["the cast"],
    },
    {
        "id": "c",
        "title": "Long",
        "context": "the plot is boring and the acting is weak , but the cast is fun . " * 12,
        "question": "How is the cast?",
        "answers": ["fun", "fun ."],
    },
]
SMALL = ["data.num_train=24", "data.num_dev=8", "data.num_test=8", "train.steps=3"]
SMALL += ["train.eval_every=2", "seed.public=5", "seed.secret=7", "train.batch_size=8"]
RUNS = {
    "mezo": ["train.lr=0.01"],
    "zpl": ["mechanism.name=paczero-zpl", "mechanism.subsets=4", "train.batch_size=full"],
    "mi": ["mechanism.name=paczero-mi", "mechanism.subsets=4", "mechanism.budget=0.3"]
    + ["train.batch_size=full", "train.lr=0.05"],
    "dpzero": ["mechanism.name=dpzero", "mechanism.clip=5", "mechanism.expected_batch=6"]
    + ["mechanism.epsilon=2", "mechanism.accountant=rdp"],
}
SQUAD_RUN = [
    "task.name=squad",
    "task.objective=ce",
    "task.max_length=192",
    "task.max_new_tokens=6",
    "model.name=tiny-llama",
    "data.source=auto",
    "data.num_train=8",
    "data.num_dev=4",
    "data.num_test=4",
    "train.steps=2",
    "train.eval_every=0",
    "train.batch_size=full",
    "mechanism.name=paczero-zpl",
    "mechanism.subsets=4",
    "seed.public=2",
    "seed.secret=3",
]


def _noisy(loaded):
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(1)
        for _, p in loaded.trainable:
            if p.ndim == 2:
                p.add_(torch.randn_like(p) * 0.2)
    return loaded


def _model(name):
    from paczero.config import ModelConfig
    from paczero.models import load_model

    return _noisy(load_model(ModelConfig(name=name, device="cpu", track="full"), 0))


def _losses(task, model, examples, micro=3):
    enc = task.encode(examples)
    out = torch.full((len(enc),), float("nan"))
    for positions, batch in task.batches(enc, np.arange(len(enc)), micro):
        out[torch.as_tensor(positions)] = task.losses(model, batch).float()
    return [float(x) for x in out], enc


def _sst2(model_name, examples):
    from paczero.config import TaskConfig
    from paczero.tasks import build_task

    loaded = _model(model_name)
    out = {}
    for template in ("mezo", "review"):
        for single in (None, False):
            task = build_task(TaskConfig(template=template), loaded.tokenizer, single_token=single)
            losses, enc = _losses(task, loaded.model, examples)
            key = f"{template}/{'auto' if single is None else 'per-option'}"
            out[key] = {
                "losses": losses,
                "ids": [r.tolist() for r in enc.ids],
                "metrics": task.evaluate(loaded.model, enc, 4),
            }
    short = build_task(TaskConfig(max_length=24), loaded.tokenizer)
    enc = short.encode(examples)
    out["truncated"] = {"count": enc.truncated, "ids": [r.tolist() for r in enc.ids]}
    return out


def _squad(model_name, examples):
    from paczero.config import TaskConfig
    from paczero.tasks import build_task

    loaded = _model(model_name)
    out = {}
    for objective in ("ce", "neg-f1"):
        cfg = TaskConfig(name="squad", objective=objective, max_length=160, max_new_tokens=8)
        task = build_task(cfg, loaded.tokenizer)
        losses, enc = _losses(task, loaded.model, examples)
        texts = {}
        for positions, batch in task.batches(enc, np.arange(len(enc)), 2, kind="generate"):
            for p, text in zip(positions, task.generate(loaded.model, batch), strict=True):
                texts[int(p)] = text
        out[objective] = {
            "losses": losses,
            "prompts": [r.tolist() for r in enc.prompts],
            "answers": [r.tolist() for r in enc.answers],
            "truncated": enc.truncated,
            "texts": [texts[i] for i in range(len(enc))],
            "metrics": task.evaluate(loaded.model, enc, 2),
        }
    return out


def _splits(name, **data):
    from paczero.config import DataConfig
    from paczero.data import load_splits

    splits = load_splits(name, DataConfig(**data))
    return {
        "pool": splits.pool_indices.tolist(),
        "dev": splits.dev_indices.tolist(),
        "test": splits.test_indices.tolist(),
        "summary": splits.summary(),
        "first": [splits.pool[0], splits.dev[0], splits.test[0]],
    }


def _run(tmp, name, overrides):
    from paczero.trainer import train

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train("smoke", out=Path(tmp) / name, overrides=overrides, progress=False)
    releases = [json.loads(x) for x in (result.run_dir / "releases.jsonl").open()]
    metrics = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").open()]
    return {"releases": releases, "metrics": metrics, "privacy": _privacy(result.data)}


def _privacy(data):
    keep = ("mechanism", "posterior_bound", "release_kinds", "unanimity_fraction", "spent")
    return {k: data["privacy"].get(k) for k in keep}


def compute(tmp: str | Path, with_data: bool) -> dict:
    from paczero.data import synthetic_sst2

    synthetic = synthetic_sst2(16, 8, seed=3)["train"]
    out: dict = {
        "sst2/tiny-opt": _sst2("tiny-opt", SST2_EXAMPLES + synthetic[:6]),
        "sst2/tiny-llama": _sst2("tiny-llama", SST2_EXAMPLES),
        "squad/tiny-llama": _squad("tiny-llama", SQUAD_EXAMPLES),
        "squad/tiny-opt": _squad("tiny-opt", SQUAD_EXAMPLES),
        "splits/synthetic": _splits(
            "sst2", source="synthetic", num_train=20, num_dev=10, num_test=10, seed=4
        ),
        "runs": {name: _run(tmp, name, [*SMALL, *sets]) for name, sets in RUNS.items()},
    }
    if with_data:
        out["splits/sst2"] = _splits("sst2", dir=DATA_DIR, num_train=100, num_dev=50, seed=1)
        out["splits/squad"] = _splits(
            "squad", dir=DATA_DIR, num_train=30, num_dev=10, num_test=20, seed=2
        )
        out["runs/squad"] = _run(tmp, "squad", SQUAD_RUN)
    return json.loads(json.dumps(out))  # what the JSON file holds (tuples -> lists)


@pytest.fixture(scope="module")
def golden():
    return json.loads(GOLDEN.read_text())


@pytest.fixture(scope="module")
def now(tmp_path_factory):
    return compute(tmp_path_factory.mktemp("presets"), with_data=bool(DATA_DIR))


KEYS = ["sst2/tiny-opt", "sst2/tiny-llama", "squad/tiny-llama", "squad/tiny-opt"]
KEYS += ["splits/synthetic", "runs"]
DATA_KEYS = ["splits/sst2", "splits/squad", "runs/squad"]


@pytest.mark.parametrize("key", KEYS)
def test_preset_values_are_unchanged(golden, now, key):
    assert now[key] == golden[key]


@pytest.mark.skipif(not DATA_DIR, reason="PACZERO_DATA_DIR is not set (CI sets it)")
@pytest.mark.parametrize("key", DATA_KEYS)
def test_preset_values_on_real_data_are_unchanged(golden, now, key):
    assert now[key] == golden[key]


if __name__ == "__main__":  # write the golden file (done once, before the refactor)
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        values = compute(tmp, with_data=bool(DATA_DIR))
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)", file=sys.stderr)
