"""The demo's code path on a tiny model: report, plot and summary are written."""

import pytest

from paczero.cli import main
from paczero.demo import demo_config, run_demo, summary
from paczero.tasks.registry import choices
from paczero.trainer import train

TINY = {"model": "tiny-llama", "overrides": ["data.source=synthetic", "data.num_dev=32"]}


def test_demo_defaults_are_the_private_smollm2_run():
    cfg = demo_config()
    assert cfg.model.name == "smollm2-135m" and cfg.model.track == "lora"
    assert cfg.mechanism.name == "paczero-zpl"
    # no template named: the demo selects among SST-2's public candidates, at I = 0
    assert cfg.task.template is None
    assert [name for name, _ in choices(cfg.task)] == ["mezo", "review", "question", "opinion"]
    assert cfg.train.eval_at_start  # the zero-shot accuracy is part of the story
    assert demo_config(mechanism="paczero-mi").mechanism.budget == pytest.approx(0.33)
    assert demo_config(steps=3, pool=32).train.steps == 3


def test_demo_runs_end_to_end_and_draws_its_plot(tmp_path):
    result, plot, text = run_demo(out=tmp_path / "demo", progress=False, steps=4, **TINY)
    history = result.data["metrics"]["dev_history"]
    assert plot.is_file() and plot.stat().st_size > 10_000
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (result.run_dir / "result.json").is_file()
    assert "zero-shot" in text and "fine-tuned" in text and "after 4 private steps" in text
    # the closing lines say which prompt the pool chose, how and at what cost
    selection = result.data["selection"]
    assert f"({selection['chosen']} template, the one trained)" in text
    assert f"Prompt: prompt '{selection['chosen']}' chosen privately among" in text
    assert "cost I = 0" in text
    assert "I(S*; releases) = 0 nats" in text and "coin flip" in text
    assert str(plot) in text and str(result.run_dir) in text
    assert [h["step"] for h in history] == [0, 4]


def test_demo_command(tmp_path, capsys):
    args = ["demo", "--model", "tiny-llama", "--steps", "2", "--out", str(tmp_path / "d")]
    args += ["--quiet", "--set", "data.source=synthetic", "--mechanism", "paczero-mi"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Privacy report (paczero-mi)" in out and "training.png" in out


def test_demo_help_states_the_recipe_defaults(capsys):
    cfg = demo_config()
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"training steps (default {cfg.train.steps})" in text
    assert f"private pool size (default {cfg.data.num_train})" in text


def test_demo_says_private_steps_only_for_a_private_mechanism(tmp_path, small_run):
    sets = [*small_run, "train.steps=4", "train.eval_every=2"]
    mezo = train("smoke", out=tmp_path / "mezo", overrides=sets, progress=False)
    text = summary(mezo.data, mezo.run_dir, mezo.run_dir / "training.png")
    assert "(after 4 steps)" in text and "private" not in text.split("Time:")[0]
    zpl_sets = [*sets, "mechanism.name=paczero-zpl", "mechanism.subsets=4"]
    zpl = train("smoke", out=tmp_path / "zpl", overrides=zpl_sets, progress=False)
    text = summary(zpl.data, zpl.run_dir, zpl.run_dir / "training.png")
    assert "(after 4 private steps)" in text
