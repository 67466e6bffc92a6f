"""The command line: commands work in-process; bad input exits 2 with one line, no traceback."""

import json
import subprocess
import sys

import pytest

from paczero.cli import main

QUICK = ["--set", "train.steps=3", "--set", "data.num_train=16", "--set", "data.num_dev=8"]
QUICK += ["--set", "data.num_test=8", "--set", "train.batch_size=4", "--set", "train.eval_every=0"]


def test_train_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "smoke", "--out", str(out), "--quiet", *QUICK]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "Privacy report (mezo)" in printed
    assert str(out) in printed
    result = json.loads((out / "result.json").read_text())
    assert main(["eval", str(out), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] == pytest.approx(result["metrics"]["test"]["accuracy"])
    assert metrics["examples"] == 8


def test_recipes_lists_every_recipe_with_a_description(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = {line.split()[0] for line in lines}
    assert {"smoke", "mezo-sst2-opt1.3b-ft", "paczero-zpl-sst2-opt1.3b-ft"} <= names
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)


def test_privacy_command(capsys):
    assert main(["privacy", "--mi", "0.33", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["posterior_bound"] == pytest.approx(0.8819, abs=1e-4)
    assert summary["epsilon"] == pytest.approx(2.01, abs=5e-3)
    assert main(["privacy", "--epsilon", "2"]) == 0
    assert "0.8808" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "smoke", "--set", "train.stepz=3"], "unknown config key 'train.stepz'"),
        (["train", "smoke", "--set", "train.steps=abc"], "invalid value for 'train.steps'"),
        (["train", "smoke", "--set", "train.steps=0"], "invalid value for 'train.steps'"),
        (["train", "smoke", "--set", "train.lr=0"], "invalid value for 'train.lr'"),
        (
            [
                "train",
                "smoke",
                "--set",
                "mechanism.name=paczero-zpl",
                "--set",
                "mechanism.subsets=5",
            ],
            "must be even",
        ),
        (["train", "smoke", "--set", "mechanism.name=paczero-mi"], "mechanism.budget"),
        (["train", "smoke", "--set", "mechanism.budget=-1"], "mechanism.budget"),
        (["train", "smoke", "--set", "train.batch_size=999"], "larger than the pool"),
        (["train", "smoke", "--set", "task.name=imdb"], "task.name 'imdb' is not a preset"),
        (["train", "nosuchrecipe"], "unknown recipe or config file 'nosuchrecipe'"),
        (["train", "missing.yaml"], "config file not found: missing.yaml"),
        (
            ["train", "smoke", "--set", "data.source=auto", "--set", "data.dir=/nonexistent"],
            "/nonexistent",
        ),
        (["eval", "/nonexistent/model", "--set", "data.source=synthetic"], "no such file"),
        (["eval", "nobody/nomodel", "--set", "data.source=synthetic"], "unknown model"),
        (["privacy", "--mi", "-1"], "'--mi': must be >= 0"),
        (["privacy", "--epsilon", "1", "--delta", "2"], "delta"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = ["--out", str(tmp_path / "run")] if args[0] == "train" else []
    assert main([*args, *out]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err
    assert err.startswith("paczero: error:") and "\n" not in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing that looks like a result


def test_a_used_output_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "smoke", "--out", str(out), "--quiet", *QUICK]) == 0
    before = sorted(p.name for p in out.iterdir())
    assert main(["train", "smoke", "--out", str(out), "--quiet", *QUICK]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_python_dash_m_and_argparse_errors_exit_2():
    done = subprocess.run(
        [sys.executable, "-m", "paczero", "privacy", "--mi", "0.11"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "0.7301" in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "paczero", "train", "--bogus"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


def test_a_malformed_data_file_names_the_file_and_line(tmp_path, capsys):
    folder = tmp_path / "data" / "sst2"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("sentence\tlabel\na fine film \t1\nno label here\n")
    (folder / "dev.tsv").write_text("sentence\tlabel\nok \t1\n")
    args = ["train", "smoke", "--out", str(tmp_path / "run"), "--set", "data.source=auto"]
    assert main([*args, "--set", f"data.dir={tmp_path / 'data'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "train.tsv line 3" in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_a_dev_best_model_at_step_0_is_said_at_the_end_and_on_export(tmp_path, capsys):
    out = tmp_path / "run"
    untrained = ["--set", "train.lr=1e-30", "--set", "train.eval_every=1"]  # no step can win
    assert main(["train", "smoke", "--out", str(out), "--quiet", *QUICK, *untrained]) == 0
    printed = capsys.readouterr().out
    assert "best" in printed and "at step 0" in printed
    assert "warning: no step beat the untrained model on dev" in printed
    assert main(["export", str(out), "--to", str(tmp_path / "exported")]) == 0
    err = capsys.readouterr().err
    assert "warning: step 0 is the untrained base model" in err
    assert main(["export", str(out), "--to", str(tmp_path / "final"), "--step", "final"]) == 0
    assert "warning" not in capsys.readouterr().err
