"""Small-data runs (issue 35 item 4): dev-best ties go to the lower dev loss, a carved
split of one label is warned about, and the thread count fits a busy machine."""

import os

import torch

from paczero.tasks import DataConfig, TaskConfig, load_splits
from paczero.threads import fit_threads_to_load, idle_cores
from paczero.trainer import better_dev


def test_a_dev_tie_in_accuracy_goes_to_the_lower_dev_loss():
    best = {"accuracy": 0.5, "loss": 0.70}
    assert better_dev({"accuracy": 0.5, "loss": 0.65}, best, "accuracy")
    assert not better_dev({"accuracy": 0.5, "loss": 0.70}, best, "accuracy")  # the earlier
    assert not better_dev({"accuracy": 0.5, "loss": 0.80}, best, "accuracy")
    assert better_dev({"accuracy": 0.6, "loss": 0.90}, best, "accuracy")
    assert not better_dev({"accuracy": 0.4, "loss": 0.10}, best, "accuracy")
    assert better_dev({"accuracy": 0.4}, None, "accuracy")


def test_a_carved_split_of_one_label_is_warned_about(tmp_path, capsys):
    rows = tmp_path / "rows.csv"
    rows.write_text("text,label\n" + "".join(f"message {i},low\n" for i in range(20)))
    task = TaskConfig(
        type="classification", prompt="{text}:", label_words={"low": "low", "high": "high"}
    )
    data = DataConfig(train=str(rows), num_train=10, num_dev=4, num_test=4)
    load_splits(task, data)
    err = capsys.readouterr().err
    assert "the dev split carved from your data (4 rows) holds a single label" in err
    assert "the test split" in err and "low" not in err  # the label itself is not named
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        "text,label\n" + "".join(f"m {i},{('low', 'high')[i % 2]}\n" for i in range(40))
    )
    load_splits(task, DataConfig(train=str(mixed), num_train=10, num_dev=10, num_test=10))
    assert "single label" not in capsys.readouterr().err


def test_the_thread_count_fits_the_idle_cores(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    assert idle_cores() == 1
    try:
        torch.set_num_threads(2)
        assert fit_threads_to_load() == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        assert fit_threads_to_load() is None and torch.get_num_threads() == 1  # never raised
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        torch.set_num_threads(2)
        monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
        assert fit_threads_to_load() is None and torch.get_num_threads() == 2  # the user's
    finally:
        torch.set_num_threads(before)


def test_a_command_run_in_process_gives_the_threads_back(monkeypatch, tmp_path):
    """The fitted count holds for the command only: a caller (this test suite) keeps its own."""
    from paczero import cli

    before = torch.get_num_threads()
    seen = []

    def command(args):
        seen.append(torch.get_num_threads())
        return 0

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    monkeypatch.setitem(cli.COMMANDS, "eval", command)
    try:
        torch.set_num_threads(2)
        assert cli.main(["eval", str(tmp_path)]) == 0
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
