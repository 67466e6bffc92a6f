"""SST-2 and SQuAD are presets of the generic task types (issue #14), and their losses,
metrics, splits and short training runs are what they were before that change, on any CPU.

``tests/data/presets-golden.json`` holds the values ``compute()`` gives (``python
tests/test_presets_unchanged.py`` writes it; first written at 7fb6427, before the task types
existed, and rewritten at the change that added the decision margins, with every value
unchanged). What is compared, and how closely:

- Exact: token ids, truncation counts, generated answers, the seeded pool/dev/test rows,
  accuracies, release kinds and subset votes (decided with a clear margin, below), the
  public stream's direction seeds, learning rates and every string.
- Floats, relative ``REL`` = 1e-5: per-example losses and evaluation losses are float32
  sums over a few hundred logits. Another CPU (AVX2 against AVX-512) or library build
  reorders those sums and moves a loss by 1e-8 to 1e-6 relative (measured: 1.2e-7 on an
  AMD EPYC, 5.9e-5 at most on a step-3 coefficient under ``ATEN_CPU_CAPABILITY=avx2``), so
  1e-5 leaves ten times room above the rounding; a real change moves them by 1e-3 or more.
- Derivatives, absolute ``REL * loss / eps``: a release (l+ - l-) / 2 eps divides two
  losses' rounding by eps = 1e-3, so a relative error REL on each loss is an absolute error
  of up to REL * loss / eps on the derivative and on every subset mean built from it.
- Training runs are compared where they are stable across kernels, not as a whole
  trajectory: the first step in full (floats as above), then the public fields of every
  step (step, seeds, lr, DP epsilon) and, for the sign mechanisms (ZPL, MI), whose update
  is +-lr*z whatever the rounding, every later step while each decision had a clear margin:
  the smallest |subset mean| the golden run saw (``margins``) above the derivative
  tolerance. A MeZO or DP coefficient after step 0 carries the earlier steps' rounding
  (the avx2 build moved one by 6e-5, an AMD CPU by 3e-3), so later steps of those runs
  compare their public fields, accuracies, and dev loss to ``TRAJECTORY_REL`` = 1e-3: the
  three small steps move the dev loss by ~5%, and a 0.3% error in one of them moves it by
  ~1e-5.

That this still catches a real change is tested below (``test_golden_catches_*``): a
changed template word, a changed label word, an off-by-one in the split and a per-example
loss reduced over the batch each make the comparison fail.
"""

from __future__ import annotations

import contextlib
import json
import math
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
SMALL += ["model.device=cpu"]  # the golden values are CPU values
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
    "model.device=cpu",
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
    from paczero.tasks import TaskConfig, build_task

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
    from paczero.tasks import TaskConfig, build_task

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
    from paczero.tasks import DataConfig, load_splits

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

    with warnings.catch_warnings(), _margins() as margins:
        warnings.simplefilter("ignore")
        result = train("smoke", out=Path(tmp) / name, overrides=overrides, progress=False)
    releases = [json.loads(x) for x in (result.run_dir / "releases.jsonl").open()]
    metrics = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").open()]
    return {
        "releases": releases,
        "metrics": metrics,
        "privacy": _privacy(result.data),
        "eps": result.data["config"]["zo"]["eps"],
        "margins": margins or None,  # None: no subset votes (MeZO, DP)
    }


@contextlib.contextmanager
def _margins():
    """The smallest |subset mean| of each step's vote (how far the closest subset was from
    flipping its sign), recorded where the subset mechanisms compute their means."""
    from paczero.mechanisms import subsets

    seen: list[float] = []
    real = subsets.subset_means

    def recording(*args, **kwargs):
        out = real(*args, **kwargs)
        means = out[0] if isinstance(out, tuple) else out
        seen.append(float(np.min(np.abs(means))))
        return out

    subsets.subset_means = recording
    try:
        yield seen
    finally:
        subsets.subset_means = real


def _privacy(data):
    keep = ("mechanism", "posterior_bound", "release_kinds", "unanimity_fraction", "spent")
    return {k: data["privacy"].get(k) for k in keep}


def compute(tmp: str | Path, with_data: bool) -> dict:
    from paczero.tasks.sst2 import synthetic_sst2

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


# ---------------------------------------------------------------- comparison

REL = 1e-5  # float32 losses across CPUs and builds (module docstring)
TRAJECTORY_REL = 1e-3  # dev loss of a MeZO or DP run after its first step
PUBLIC_REL = 1e-9  # float64 values of public quantities only (the DP accountant's epsilon)
SIGN_KINDS = {"unanimous", "coin", "skip", "noisy", "noiseless", "free"}


def mismatches(now, gold, path: str = "", rel: float = REL, atol: float = 0.0) -> list[str]:
    """Where ``now`` differs from ``gold``: floats beyond ``rel``/``atol``, anything else
    (ints, strings, booleans, None, shapes, keys) at all."""
    if isinstance(gold, dict) and isinstance(now, dict):
        if set(now) != set(gold):
            return [f"{path}: keys {sorted(set(now) ^ set(gold))} differ"]
        return [m for k in gold for m in mismatches(now[k], gold[k], f"{path}/{k}", rel, atol)]
    if isinstance(gold, list) and isinstance(now, list):
        if len(now) != len(gold):
            return [f"{path}: {len(now)} items, golden {len(gold)}"]
        pairs = enumerate(zip(now, gold, strict=True))
        return [m for i, (a, b) in pairs for m in mismatches(a, b, f"{path}[{i}]", rel, atol)]
    floats = (float, int)
    if isinstance(gold, float) and isinstance(now, floats) and not isinstance(now, bool):
        if math.isclose(now, gold, rel_tol=rel, abs_tol=atol) or (now != now and gold != gold):
            return []
        return [f"{path}: {now!r}, golden {gold!r}"]
    if type(now) is not type(gold) or now != gold:
        return [f"{path}: {now!r}, golden {gold!r}"]
    return []


def _pick(record: dict, keys) -> dict:
    return {k: record[k] for k in keys if k in record}


PUBLIC_FIELDS = ("step", "seeds", "lr")
DECISION_FIELDS = ("kinds", "frac_plus", "unanimous")


def run_mismatches(now: dict, gold: dict) -> list[str]:
    """A short training run, compared where it is stable across kernels (module docstring)."""
    mine, theirs = now["releases"], gold["releases"]
    if len(mine) != len(theirs) or len(now["metrics"]) != len(gold["metrics"]):
        return [f"{len(mine)} steps and {len(now['metrics'])} evaluations, golden "
                f"{len(theirs)} and {len(gold['metrics'])}"]  # fmt: skip
    out = mismatches(now["eps"], gold["eps"], "eps")
    signs = all(set(r["kinds"]) <= SIGN_KINDS for r in theirs)
    clear = _clear_steps(gold) if signs else 1  # steps replayed exactly on any CPU
    for t, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        where = f"releases[{t}]"
        out += mismatches(_pick(a, PUBLIC_FIELDS), _pick(b, PUBLIC_FIELDS), where)
        out += mismatches(a.get("epsilon"), b.get("epsilon"), f"{where}/epsilon", PUBLIC_REL)
        if t < clear:
            atol = 0.0 if signs else _derivative_tolerance(gold, b)
            out += mismatches(_body(a), _body(b), where, atol=atol)
        elif not signs:
            out += mismatches(a["kinds"], b["kinds"], f"{where}/kinds")
    for i, (a, b) in enumerate(zip(now["metrics"], gold["metrics"], strict=True)):
        where = f"metrics[{i}]"
        if b["step"] <= clear - (0 if signs else 1):
            out += mismatches(a, b, where)
        elif not signs:  # a MeZO/DP model a few steps on: dev loss to TRAJECTORY_REL
            out += mismatches(a["loss"], b["loss"], f"{where}/loss", TRAJECTORY_REL)
            out += mismatches(_without(a, "loss"), _without(b, "loss"), where)
    privacy_now, privacy_gold = now["privacy"], gold["privacy"]
    if signs and clear < len(theirs):  # the tally depends on the votes after an unclear one
        privacy_now = _pick(privacy_now, ("mechanism", "posterior_bound"))
        privacy_gold = _pick(privacy_gold, ("mechanism", "posterior_bound"))
    return out + mismatches(privacy_now, privacy_gold, "privacy")


def _clear_steps(gold: dict) -> int:
    """How many first steps of a sign mechanism's run voted with a clear margin."""
    for t, (margin, record) in enumerate(zip(gold["margins"], gold["releases"], strict=True)):
        if margin <= _derivative_tolerance(gold, record):
            return t
    return len(gold["releases"])


def _derivative_tolerance(gold: dict, record: dict) -> float:
    """REL on both losses of (l+ - l-) / 2 eps, in derivative units (module docstring)."""
    return REL * abs(record.get("loss", 1.0)) / gold["eps"]


def _body(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("sha", "prev", *PUBLIC_FIELDS)}


def _without(record: dict, key: str) -> dict:
    return {k: v for k, v in record.items() if k != key}


def differences(key: str, now, gold) -> list[str]:
    if key == "runs":
        return [f"{name}: {m}" for name in gold for m in run_mismatches(now[name], gold[name])]
    if key.startswith("runs/"):
        return run_mismatches(now, gold)
    return mismatches(now, gold)


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
    assert differences(key, now[key], golden[key]) == []


@pytest.mark.skipif(not DATA_DIR, reason="PACZERO_DATA_DIR is not set (CI sets it)")
@pytest.mark.parametrize("key", DATA_KEYS)
def test_preset_values_on_real_data_are_unchanged(golden, now, key):
    assert differences(key, now[key], golden[key]) == []


# ---------------------------------------------------------------- the comparison has teeth


def test_golden_catches_a_changed_template_word(golden, monkeypatch):
    from paczero.tasks import sst2

    mezo = sst2.TEMPLATES["mezo"]
    changed = sst2.Template(mezo.name, mezo.prefix, " It is", mezo.options)
    monkeypatch.setitem(sst2.TEMPLATES, "mezo", changed)
    found = mismatches(_sst2("tiny-llama", SST2_EXAMPLES), golden["sst2/tiny-llama"])
    assert any(m.startswith("/mezo/auto/ids") for m in found)
    assert any(m.startswith("/mezo/auto/losses") for m in found)


def test_golden_catches_a_changed_label_word(golden, monkeypatch):
    from paczero.tasks import sst2

    mezo = sst2.TEMPLATES["mezo"]
    changed = sst2.Template(mezo.name, mezo.prefix, mezo.suffix, (" terrible", " good"))
    monkeypatch.setitem(sst2.TEMPLATES, "mezo", changed)
    found = mismatches(_sst2("tiny-llama", SST2_EXAMPLES), golden["sst2/tiny-llama"])
    assert any(m.startswith("/mezo/auto/losses") for m in found)
    assert not any(m.startswith("/review/") for m in found)  # the other template is as it was


def test_golden_catches_an_off_by_one_split(golden, monkeypatch):
    from paczero.tasks import sst2

    real = sst2.sample_splits

    def from_row_one(data, cfg):  # range(1, n) where range(n) was meant
        return real({**data, "train": data["train"][1:]}, cfg)

    monkeypatch.setattr(sst2, "sample_splits", from_row_one)
    now = _splits("sst2", source="synthetic", num_train=20, num_dev=10, num_test=10, seed=4)
    found = mismatches(now, golden["splits/synthetic"])
    assert any(m.startswith("/pool") for m in found) and any(m.startswith("/dev") for m in found)


def test_golden_catches_a_loss_reduced_over_the_batch(golden, monkeypatch):
    from paczero.tasks.classification import ClassificationTask

    real = ClassificationTask.losses

    def batch_mean(self, model, batch):  # reduction="mean" where per-example was meant
        losses = real(self, model, batch)
        return losses.mean().expand_as(losses).clone()

    monkeypatch.setattr(ClassificationTask, "losses", batch_mean)
    found = mismatches(_sst2("tiny-llama", SST2_EXAMPLES), golden["sst2/tiny-llama"])
    assert any("/losses[" in m for m in found)
    assert not any("/ids" in m or "/metrics" in m for m in found)  # only the reduction moved


def test_tolerances_pass_rounding_and_fail_real_changes():
    gold = {"loss": 1.165023058031996, "ids": [1, 2], "text": "a"}
    assert mismatches({**gold, "loss": 1.1650229264050722}, gold) == []  # the AMD EPYC value
    assert mismatches({**gold, "loss": 1.1650230580 * (1 + 1e-3)}, gold) != []
    assert mismatches({**gold, "ids": [1, 3]}, gold) == ["/ids[1]: 3, golden 2"]
    assert mismatches({**gold, "ids": [1, 2.0]}, gold) != []  # an int stays an int
    assert mismatches({**gold, "text": "b"}, gold) != []


if __name__ == "__main__":  # write the golden file
    import tempfile

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        values = compute(tmp, with_data=bool(DATA_DIR))
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(values, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)", file=sys.stderr)
