"""End to end on tiny models: learning, the run directory, ZPL secret-independence, MI budget."""

import json
import stat

import numpy as np
import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from paczero.config import ModelConfig
from paczero.engine.zo import ZOEstimator, direction_block
from paczero.evaluation import evaluate
from paczero.models import load_model
from paczero.privacy.bounds import mi_to_epsilon, mi_to_posterior_bound
from paczero.session import pool_losses
from paczero.tasks import TaskConfig, build_task
from paczero.tasks.sst2 import synthetic_sst2
from paczero.trainer import train

from sizes import small_run

QUICK = small_run("train.steps=6", "train.eval_every=3", "train.batch_size=8")


def run(tmp_path, name, *overrides):
    return train("smoke", out=tmp_path / name, overrides=[*QUICK, *overrides], progress=False)


def test_mezo_learns_a_separable_task(tmp_path):
    result = train("smoke", out=tmp_path / "learn", progress=False)
    history = [h["accuracy"] for h in result.data["metrics"]["dev_history"]]
    assert history[0] < 0.6  # a random tiny model is near chance
    assert result.data["metrics"]["dev_best"]["accuracy"] >= 0.7
    assert result.test["accuracy"] >= 0.7
    assert len(history) == 4  # steps 0, 100, 200, 300


def test_derivatives_match_a_float64_central_difference():
    loaded = load_model(ModelConfig(name="tiny-llama", track="full", device="cpu"), seed=0)
    with torch.no_grad():
        for _, p in loaded.trainable:
            p.mul_(5.0)  # sharper outputs than the near-uniform random init
    task = build_task(TaskConfig(), loaded.tokenizer)
    encoded = task.encode(synthetic_sst2(8, 2, seed=1)["train"])
    rows = np.arange(len(encoded))
    params = [p for _, p in loaded.trainable]
    eps, seed = 1e-3, 4242

    def losses():
        return pool_losses(loaded.model, task, encoded, rows, 4)

    g = ZOEstimator(params, eps, restore="exact").estimate(seed, losses).derivatives

    model64 = loaded.model.double()
    params64 = [p for _, p in loaded.trainable]
    zs = [direction_block(p, seed, i).double() for i, p in enumerate(params64)]
    with torch.no_grad():
        for p, z in zip(params64, zs, strict=True):
            p.add_(z, alpha=eps)
        plus = _losses64(model64, task, encoded)
        for p, z in zip(params64, zs, strict=True):
            p.add_(z, alpha=-2 * eps)
        minus = _losses64(model64, task, encoded)
    reference = ((plus - minus) / (2 * eps)).numpy()
    assert np.abs(reference).max() > 0.05  # the check is not vacuous
    np.testing.assert_allclose(g, reference, rtol=1e-3, atol=2e-3)


def _losses64(model, task, encoded):
    """The same loss (cross-entropy over the label-word scores) with float64 weights."""
    out = torch.empty(len(encoded), dtype=torch.float64)
    for positions, batch in task.batches(encoded, np.arange(len(encoded)), 4):
        scores = task.scores(model, batch).double()
        nll = -torch.log_softmax(scores, dim=-1).gather(1, batch.labels[:, None]).squeeze(1)
        out[torch.as_tensor(positions)] = nll
    return out


def test_run_directory_is_complete(tmp_path):
    result = run(tmp_path, "mezo")
    path = result.run_dir
    for name in ("config.yaml", "releases.jsonl", "metrics.jsonl", "result.json"):
        assert (path / name).is_file(), name
    assert stat.S_IMODE((path / "private").stat().st_mode) == 0o700
    records = [json.loads(line) for line in (path / "releases.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(6))
    for record in records:
        assert {"seeds", "lr", "coeffs", "kinds", "charge", "cumulative", "loss"} <= set(record)
    data = json.loads((path / "result.json").read_text())
    assert data == result.data
    assert data["metrics"]["test"]["accuracy"] == pytest.approx(result.test["accuracy"])
    assert data["metrics"]["best_step"] in (0, 3, 6)
    privacy = data["privacy"]
    assert privacy["private"] is False and privacy["mechanism"] == "mezo"
    assert privacy["release_kinds"] == {"nonprivate": 6}
    assert {"budget", "spent", "posterior_bound", "matched_epsilon", "secret_source"} <= set(
        privacy
    )
    assert {"python", "torch", "transformers", "peft", "paczero"} <= set(data["versions"])
    assert data["timing"]["step_s_median"] > 0 and data["memory"]["peak_rss_mb"] > 0
    assert data["hardware"]["device"] == "cpu"
    # the saved model loads with plain transformers and holds the dev-best tensors
    model = AutoModelForCausalLM.from_pretrained(path / "model")
    best = load_file(path / "checkpoints" / "best.safetensors")
    named = dict(model.named_parameters())
    for name, tensor in best.items():
        assert torch.equal(named[name], tensor), name


def test_lora_run_saves_an_adapter_and_eval_reproduces_the_test_metric(tmp_path):
    result = run(tmp_path, "lora", "model.track=lora")
    base = load_model(ModelConfig(name="tiny-llama", track="full", device="cpu"), seed=0).model
    adapted = PeftModel.from_pretrained(base, result.run_dir / "model")
    assert any("lora_" in n for n, _ in adapted.named_parameters())
    metrics = evaluate(result.run_dir, split="test")
    assert metrics["accuracy"] == pytest.approx(result.test["accuracy"])
    assert metrics["examples"] == 16


def test_zpl_is_secret_independent_bit_for_bit(tmp_path):
    zpl = ["mechanism.name=paczero-zpl", "mechanism.subsets=4", "seed.public=3"]
    with pytest.warns(UserWarning, match="seed.secret"):
        a = run(tmp_path, "a", *zpl, "seed.secret=1")
    with pytest.warns(UserWarning, match="seed.secret"):
        b = run(tmp_path, "b", *zpl, "seed.secret=2")
    for name in ("releases.jsonl", "metrics.jsonl", "config.yaml"):  # no secret seed in any
        assert (a.run_dir / name).read_bytes() == (b.run_dir / name).read_bytes(), name
    for name in ("best", "final"):
        ta = load_file(a.run_dir / "checkpoints" / f"{name}.safetensors")
        tb = load_file(b.run_dir / "checkpoints" / f"{name}.safetensors")
        assert ta.keys() == tb.keys()
        assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert a.privacy == b.privacy
    assert a.privacy["spent"] == {"mi_bound": 0.0, "charged": 0.0}
    assert a.privacy["mi_bound"] == 0.0 and a.privacy["posterior_bound"] == 0.5
    secret_a = json.loads((a.run_dir / "private" / "secret.json").read_text())
    secret_b = json.loads((b.run_dir / "private" / "secret.json").read_text())
    assert secret_a["root"] != secret_b["root"]


def test_zpl_secret_comes_from_os_entropy_by_default(tmp_path):
    result = run(tmp_path, "zpl", "mechanism.name=paczero-zpl", "mechanism.subsets=4")
    assert result.privacy["secret_source"] == "os-entropy"
    kinds = result.privacy["release_kinds"]
    assert set(kinds) <= {"unanimous", "coin"} and sum(kinds.values()) == 6
    fraction = result.privacy["unanimity_fraction"]
    assert fraction == pytest.approx(kinds.get("unanimous", 0) / 6)


def test_mi_run_never_exceeds_its_budget_and_stops_when_spent(tmp_path):
    budget = 2e-3
    mi = ["mechanism.name=paczero-mi", "mechanism.subsets=4", f"mechanism.budget={budget}"]
    result = run(tmp_path, "mi", *mi, "train.steps=12")
    records = [json.loads(x) for x in (result.run_dir / "releases.jsonl").read_text().splitlines()]
    cumulative = [r["cumulative"] for r in records]
    assert all(c <= budget for c in cumulative)
    assert cumulative == sorted(cumulative)
    assert sum(r["charge"] for r in records) == pytest.approx(cumulative[-1], rel=1e-12)
    charged = result.privacy["spent"]["charged"]
    assert charged <= budget and charged == pytest.approx(cumulative[-1])
    # The guarantee comes from the budget, not from this path's charges.
    assert result.privacy["mi_bound"] == result.privacy["spent"]["mi_bound"] == budget
    assert result.privacy["posterior_bound"] == mi_to_posterior_bound(budget)
    assert result.privacy["matched_epsilon"] == mi_to_epsilon(budget)
    assert 0.5 < result.privacy["posterior_bound"] <= 0.5 + (budget / 2) ** 0.5
    assert result.privacy["budget"] == budget
    public_text = (result.run_dir / "releases.jsonl").read_text()
    assert "secret" not in public_text


def test_mi_with_noise_spends_the_whole_budget_then_stops(tmp_path):
    mi = ["mechanism.name=paczero-mi", "mechanism.subsets=4", "mechanism.budget=1e-4"]
    mi += ["mechanism.allocation=uniform", "train.steps=12"]
    result = run(tmp_path, "mi-uniform", *mi)
    assert result.privacy["spent"]["charged"] <= 1e-4
    assert result.data["training"]["steps_run"] <= 12


def test_k_directions_release_k_signs_per_step_and_split_the_mi_budget(tmp_path):
    mi = ["mechanism.name=paczero-mi", "mechanism.subsets=4", "mechanism.budget=1e-3"]
    result = run(tmp_path, "k3", *mi, "zo.directions=3", "mechanism.allocation=uniform")
    records = [json.loads(x) for x in (result.run_dir / "releases.jsonl").read_text().splitlines()]
    for record in records:
        assert len(record["seeds"]) == len(set(record["seeds"])) == 3
        assert len(record["coeffs"]) == len(record["kinds"]) == 3
        assert record["charge"] <= 1e-3 / 6 * (1 + 1e-9)  # B / T per step, shared by K
    assert result.privacy["releases"] == 18 and result.privacy["spent"]["charged"] <= 1e-3
