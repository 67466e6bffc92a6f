"""What a new user trips on (issue 36 items 16 and 18): `paczero train` alone shows how to
start instead of starting the default multi-hour run; `--debug` goes anywhere on the line;
`dir(paczero)` lists the API."""

from __future__ import annotations

import pytest

import paczero
from paczero.cli import main


def test_train_with_no_config_prints_usage_and_the_recipes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train"]) == 2
    out, err = capsys.readouterr()
    assert "usage: paczero train" in err and "smoke" in err and "paczero recipes" not in out
    assert "give a recipe" in err
    assert not list(tmp_path.iterdir())  # no run directory started


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_goes_before_or_after_the_subcommand(where, capsys):
    argv = ["privacy", "--mi", "-1"]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    with pytest.raises(Exception, match="must be >= 0"):  # --debug: the traceback, not a line
        main(argv)
    assert main(["privacy", "--mi", "-1"]) == 2  # without it: one line


def test_dir_of_the_package_lists_its_api():
    names = dir(paczero)
    assert {"train", "predict", "export", "load_config", "resume", "evaluate"} <= set(names)
    assert "__version__" in names
