"""Issue #17 item 6, one test each: data.dir with synthetic data, the description after
overrides, the demo's wording for MeZO, the DP report's neighbouring relation, SQuAD's
max_length on a 512-position model (the -F1 all-zero unanimity, the bar's final dev figure
and the README snippets have theirs in tests/mechanisms/test_paczero.py,
tests/test_progress.py and tests/test_readme.py)."""

import json

import pytest
import yaml

from paczero.cli import main
from paczero.config import load_config
from paczero.demo import summary
from paczero.errors import UserError
from paczero.report import describe_privacy
from paczero.trainer import train

SMALL = ["data.num_train=32", "data.num_dev=16", "data.num_test=16", "train.steps=4"]


def test_data_dir_with_synthetic_data_is_refused_not_ignored(tmp_path, monkeypatch, capsys):
    with pytest.raises(UserError, match="data.source is 'synthetic', which reads no files"):
        load_config("smoke", [f"data.dir={tmp_path}"])
    assert main(["train", "smoke", "--set", f"data.dir={tmp_path}", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "data.dir" in err and "data.source=auto" in err and len(err.splitlines()) == 1
    # $PACZERO_DATA_DIR is an environment default, not a request: dropped for synthetic runs.
    monkeypatch.setenv("PACZERO_DATA_DIR", str(tmp_path))
    cfg = load_config("smoke")
    assert cfg.data.dir is None
    assert load_config("smoke", ["data.source=auto"]).data.dir == str(tmp_path)


def test_result_json_description_says_which_keys_were_overridden(tmp_path):
    recipe = load_config("smoke").description
    result = train("smoke", out=tmp_path / "run", overrides=SMALL, progress=False)
    described = result.data["config"]["description"]
    assert described.startswith(recipe) and described != recipe
    assert "overridden: data.num_train, data.num_dev, data.num_test, train.steps" in described
    stored = yaml.safe_load((result.run_dir / "config.yaml").read_text())["description"]
    assert stored == described
    # A run's own config.yaml is not described again (resume and eval load it).
    again = load_config(str(result.run_dir / "config.yaml"), ["train.lr=0.5"])
    assert again.description == described
    assert load_config("smoke", ["description=mine", "train.steps=3"]).description == "mine"
    assert load_config("smoke").description == recipe


def test_demo_says_private_steps_only_for_a_private_mechanism(tmp_path):
    sets = [*SMALL, "train.eval_every=2"]
    mezo = train("smoke", out=tmp_path / "mezo", overrides=sets, progress=False)
    text = summary(mezo.data, mezo.run_dir, mezo.run_dir / "training.png")
    assert "(after 4 steps)" in text and "private" not in text.split("Time:")[0]
    zpl_sets = [*sets, "mechanism.name=paczero-zpl", "mechanism.subsets=4"]
    zpl = train("smoke", out=tmp_path / "zpl", overrides=zpl_sets, progress=False)
    text = summary(zpl.data, zpl.run_dir, zpl.run_dir / "training.png")
    assert "(after 4 private steps)" in text


def test_dp_text_report_states_the_neighbouring_relation(tmp_path):
    sets = [*SMALL, "mechanism.name=dpzero", "mechanism.clip=5", "mechanism.expected_batch=3",
            "mechanism.epsilon=2", "mechanism.accountant=rdp"]  # fmt: skip
    result = train("smoke", out=tmp_path / "dp", overrides=sets, progress=False)
    relation = result.privacy["neighbouring_relation"]
    text = describe_privacy(result.privacy)
    assert f"neighbouring relation: {relation}" in text and "add-or-remove-one" in text
    assert f"neighbouring relation: {relation}" in str(result)


def test_squad_default_max_length_fits_a_512_position_model(tmp_path):
    """tiny-llama has 512 positions: SQuAD's default 2048 is cut to them, and a context
    too long for them is truncated instead of refused."""
    from paczero.models import load_model
    from paczero.session import build_task_for

    context = " ".join(["the film was great and the acting was good"] * 80)  # > 512 tokens
    articles = [
        {
            "title": f"Article {a}",
            "paragraphs": [
                {
                    "context": context,
                    "qas": [
                        {
                            "id": f"{a}-{q}",
                            "question": "how was the film?",
                            "answers": [{"answer_start": 13, "text": "great"}],
                        }
                    ],  # fmt: skip
                }
                for q in range(2)
            ],
        }
        for a in range(6)
    ]
    (tmp_path / "squad").mkdir()
    (tmp_path / "squad" / "dev-v1.1.json").write_text(json.dumps({"data": articles}))
    sets = ["model.name=tiny-llama", "model.device=cpu", "task.name=squad",
            "task.max_new_tokens=4", f"data.dir={tmp_path}", "data.num_train=4",
            "data.num_dev=2", "data.num_test=2", "train.steps=1", "train.batch_size=full",
            "zo.micro_batch=2", "train.eval_batch=2"]  # fmt: skip
    cfg = load_config(None, sets)
    assert cfg.task.max_length == 2048  # the default, for OPT's 2048 positions
    loaded = load_model(cfg.model, seed=0)
    task = build_task_for(cfg, loaded)
    assert task.max_prompt == 512 - 4
    assert len(loaded.tokenizer(context)["input_ids"]) > 512  # the old code refused this
    result = train(None, out=tmp_path / "run", overrides=sets, progress=False)
    assert set(result.test) == {"f1", "exact_match", "loss"}
