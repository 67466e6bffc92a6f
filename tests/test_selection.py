"""The private selection stage (paczero.selection): candidates, decisions, public bytes,
and the chosen prompt carried through result.json, the summary, the card, resume, export
and predict."""

import json
import shutil

import numpy as np
import pytest

from paczero.cli import main
from paczero.config import load_config
from paczero.durable import export, resume
from paczero.prediction import predict
from paczero.privacy.randomness import public_stream
from paczero.selection import SELECTION_FILE, read, select
from paczero.tasks.registry import choices
from paczero.trainer import train

BASE = {
    "model": {"name": "tiny-llama", "track": "full", "dtype": "float32", "device": "cpu"},
    "task": {"name": "sst2"},  # no template named: the preset's candidates
    "data": {"source": "synthetic", "num_train": 32, "num_dev": 16, "num_test": 16},
    "zo": {"eps": 1e-3, "micro_batch": 64},
    "train": {"steps": 4, "lr": 1e-3, "batch_size": "full", "eval_every": 2},
    "mechanism": {"name": "paczero-zpl", "subsets": 4},
}


def config(**sections):
    out = json.loads(json.dumps(BASE))
    for key, value in sections.items():
        out[key] = {**out.get(key, {}), **value}
    return out


# ------------------------------------------------------------ the decisions


def _choose(mechanism: list[str], losses: dict[str, np.ndarray], n: int = 16):
    """The stage over candidates whose per-example losses are given (by name)."""
    cfg = load_config(None, [f"data.num_train={n}", *mechanism])
    choices = [(name, name) for name in losses]
    return select(cfg, choices, [{}] * n, lambda task, rows: losses[task], public_stream(0), n)


def test_a_challenger_wins_only_when_every_subset_prefers_it():
    rng = np.random.default_rng(0)
    base = rng.uniform(1.0, 2.0, 16)
    better = base - 0.5  # lower loss on every example: every subset prefers it
    mixed = base.copy()
    mixed[:8] -= 1.0  # better on half of the rows, worse on the rest
    mixed[8:] += 1.0
    zpl = ["mechanism.name=paczero-zpl", "mechanism.subsets=8"]
    out = _choose(zpl, {"a": base, "b": mixed, "c": better})
    first, second = out.records
    assert (first["incumbent"], first["challenger"]) == ("a", "b")
    assert not first["unanimous"] and first["released"] == "a"
    assert 0 < first["prefer_challenger"] < 8
    assert second["unanimous"] and second["released"] == "c" and out.chosen == "c"
    assert all(r["cost"] == {"mi_nats": 0.0} for r in out.records)
    # the scores stay private: no per-subset figure in any public record
    public = json.dumps(out.records)
    assert "subset_mean_loss" not in public and len(out.private["subset_mean_loss"]["a"]) == 8
    # a non-private mechanism takes the plain best on the pool
    best = _choose(["mechanism.name=mezo"], {"a": base, "b": mixed, "c": better})
    assert best.chosen == "c" and best.records[0]["rule"] == "best"


def test_a_dp_run_pins_the_first_candidate_or_refuses_listed_ones(tmp_path, capsys):
    dp = [
        "mechanism.name=dpzero",
        "mechanism.epsilon=2",
        "mechanism.clip=1",
        "mechanism.expected_batch=4",
    ]
    out = _choose(dp, {"a": np.ones(16), "b": np.zeros(16)})
    assert out.chosen == "a" and out.records[0]["rule"] == "pinned"
    cfg = config(
        mechanism={"name": "dpzero", "epsilon": 2, "clip": 1, "expected_batch": 4},
        task={"candidates": [{"name": "mezo"}, {"name": "review", "template": "review"}]},
    )
    cfg["mechanism"].pop("subsets")
    (tmp_path / "dp.yaml").write_text(json.dumps(cfg))
    args = ["train", str(tmp_path / "dp.yaml"), "--out", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "has no private selection yet" in err and "\n" not in err


def test_a_pinned_template_selects_nothing_and_a_bare_preset_selects():
    assert choices(load_config("paper-table-smollm2").task) == []
    names = [name for name, _ in choices(load_config(None, ["task.name=sst2"]).task)]
    assert names == ["mezo", "review", "question", "opinion"]
    squad = choices(load_config(None, ["task.name=squad"]).task)
    assert [(n, t.template, t.chat_template) for n, t in squad][-1] == ("mezo-chat", "mezo", True)


# ------------------------------------------------------------ runs


def test_two_secrets_give_the_same_public_selection_bytes(tmp_path):
    runs = []
    for secret in (1, 2):
        cfg = config(seed={"secret": secret})
        runs.append(train(cfg, out=tmp_path / f"s{secret}", progress=False))
    a, b = (r.run_dir / SELECTION_FILE for r in runs)
    assert a.read_bytes() == b.read_bytes() and len(read(runs[0].run_dir)) == 3
    assert runs[0].data["selection"] == runs[1].data["selection"]
    assert runs[0].data["selection"]["cost"] == {"mi_nats": 0.0}
    private = json.loads((runs[0].run_dir / "private" / "selection.json").read_text())
    assert set(private["subset_mean_loss"]) == {"mezo", "review", "question", "opinion"}


def test_an_mi_run_keeps_its_budget_through_the_selection(tmp_path):
    cfg = config(mechanism={"name": "paczero-mi", "subsets": 4, "budget": 0.05})
    result = train(cfg, out=tmp_path / "mi", progress=False)
    assert result.data["selection"]["rule"] == "unanimous"
    assert result.privacy["mi_bound"] == pytest.approx(0.05)


def test_resume_and_export_of_a_selected_run_match_the_uninterrupted_run(tmp_path):
    cfg = config(seed={"secret": 7}, train={"steps": 6, "eval_every": 3})
    full = train(cfg, out=tmp_path / "full", progress=False).run_dir
    # the same run cut after 3 steps (the state a kill leaves, checkpoint at 3), resumed
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    for name in ("releases.jsonl", "private/releases.jsonl"):
        lines = (cut / name).read_bytes().splitlines(keepends=True)
        (cut / name).write_bytes(b"".join(lines[:3]))
    metrics = (cut / "metrics.jsonl").read_bytes().splitlines(keepends=True)
    (cut / "metrics.jsonl").write_bytes(b"".join(m for m in metrics if b'"step": 6' not in m))
    (cut / "result.json").unlink()
    shutil.rmtree(cut / "model")
    for extra in ("checkpoints/step-0000006", "checkpoints/final.safetensors"):
        path = cut / extra
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    resumed = resume(cut, progress=False)
    for name in (SELECTION_FILE, "releases.jsonl", "metrics.jsonl"):
        assert (cut / name).read_bytes() == (full / name).read_bytes(), name
    assert resumed.data["selection"] == json.loads((full / "result.json").read_text())["selection"]
    info = [export(run, tmp_path / f"export-{run.name}") for run in (full, cut)]
    assert info[0]["task"] == info[1]["task"] and info[0]["selection"] == info[1]["selection"]
    chosen = info[0]["selection"]["chosen"]
    assert info[0]["task"]["template"] == chosen and info[0]["task"]["candidates"] is None
    card = (tmp_path / "export-full" / "README.md").read_text()
    assert "| prompt selection |" in card and f"template `{chosen}`" in card


def test_an_own_task_with_candidate_prompts_selects_at_i0_and_says_so(tmp_path, capsys):
    rng = np.random.default_rng(3)
    words = {"low": ["later", "minor", "whenever"], "high": ["down", "urgent", "broken"]}
    lines = ["text,label"]
    for i in range(300):
        label = "high" if i % 2 else "low"
        lines.append(f"ticket {i}: service {rng.choice(words[label])} today,{label}")
    data = tmp_path / "tickets.csv"
    data.write_text("\n".join(lines) + "\n")
    task = tmp_path / "tickets.yaml"
    task.write_text(
        "type: classification\n"
        "prompt: 'Ticket: {text}\\nPriority:'\n"
        "label_words: {low: low, high: high}\n"
        "candidates:\n"
        "  - {name: plain}\n"
        "  - {name: question, prompt: 'How urgent is this ticket? {text}\\nAnswer:'}\n"
        "  - {name: words, label_words: {low: normal, high: urgent}}\n"
    )
    run_cfg = {  # no mechanism named: PACZero-ZPL, private by default
        "model": {"name": "tiny-llama"},
        "task": {"file": str(task)},
        "data": {"train": str(data)},
        "train": {"steps": 2, "eval_every": 0},
    }
    (tmp_path / "run.yaml").write_text(json.dumps(run_cfg))
    args = ["train", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "run"), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    selection = result["selection"]
    assert selection["rule"] == "unanimous" and selection["cost"] == {"mi_nats": 0.0}
    assert selection["candidates"] == ["plain", "question", "words"]
    assert result["privacy"]["mi_bound"] == 0.0
    chosen = selection["chosen"]
    assert f"prompt '{chosen}' chosen privately" in out  # the summary
    # the privacy report states the selection's claim and cost
    assert result["privacy"]["selection"]["cost"] == {"mi_nats": 0.0}
    assert f"prompt selection: '{chosen}' chosen among 3 candidates" in out and "I = 0" in out
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert f"prompt '{chosen}' chosen privately" in card
    rows = tmp_path / "rows.csv"
    rows.write_text("text\nticket x: service down today\n")
    records = predict(tmp_path / "run", rows)
    assert records[0]["prompt"] == chosen
    assert main(["predict", str(tmp_path / "run"), "--data", str(rows)]) == 0
    assert f"prompt '{chosen}' chosen privately" in capsys.readouterr().err
