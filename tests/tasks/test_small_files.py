"""Defaults that fit a small file of one's own (issue #25 item 4): sizes read off the files,
``data.num_train: all``, M and the batch sized to the pool, a small file's steps and lr; the
presets' defaults unchanged."""

import pytest

from paczero.config import load_config
from paczero.errors import UserError

TASK = [
    "task.type=classification",
    "task.prompt='Message: {text}\nTeam:'",
    "task.label_field=team",
    "task.label_words={a: A, b: B}",
]


def _csv(path, n, users=None):
    lines = ["user,text,team"]
    for i in range(n):
        user = f"u{i % users}" if users else f"u{i}"
        lines.append(f"{user},message {i},{'ab'[i % 2]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_60_row_file_trains_without_editing_a_default(tmp_path):
    cfg = load_config(None, [*TASK, f"data.train={_csv(tmp_path / 't.csv', 60)}"])
    assert (cfg.data.num_train, cfg.data.num_dev, cfg.data.num_test) == (48, 6, 6)
    assert cfg.mechanism.name == "paczero-zpl" and cfg.mechanism.subsets == 48
    assert (cfg.train.steps, cfg.train.lr, cfg.train.batch_size) == (100, 0.01, 16)


def test_sizes_follow_the_dev_and_test_files_and_all_takes_the_rest(tmp_path):
    train = _csv(tmp_path / "t.csv", 30)
    dev = _csv(tmp_path / "d.csv", 7)
    test = _csv(tmp_path / "e.csv", 5)
    cfg = load_config(None, [*TASK, f"data.train={train}", f"data.dev={dev}", f"data.test={test}"])
    assert (cfg.data.num_train, cfg.data.num_dev, cfg.data.num_test) == (30, 7, 5)
    cfg = load_config(None, [*TASK, f"data.train={train}", f"data.dev={dev}"])
    assert (cfg.data.num_train, cfg.data.num_dev, cfg.data.num_test) == (30, 4, 3)
    sets = [*TASK, f"data.train={train}", "data.num_train=all", "data.num_dev=5"]
    cfg = load_config(None, [*sets, "data.num_test=2"])
    assert (cfg.data.num_train, cfg.data.num_dev, cfg.data.num_test) == (23, 5, 2)


def test_all_counts_units_and_sizes_m_and_the_batch(tmp_path):
    train = _csv(tmp_path / "t.csv", 60, users=12)
    sets = [*TASK, f"data.train={train}", "data.group_field=user", "data.num_train=all"]
    cfg = load_config(None, sets)
    assert (cfg.data.num_train, cfg.data.num_dev, cfg.data.num_test) == (10, 1, 1)
    assert cfg.mechanism.subsets == 10 and cfg.train.batch_size == "full"
    named = load_config(None, [*sets, "mechanism.name=paczero-mi", "mechanism.budget=0.3"])
    assert named.mechanism.subsets == 10  # a named subset mechanism without M too


def test_all_needs_a_local_file_and_the_presets_keep_their_defaults():
    with pytest.raises(UserError, match="needs data.train to be a local file"):
        load_config(None, [*TASK, "data.train=someone/tickets", "data.num_train=all"])
    cfg = load_config(None, [*TASK, "data.train=someone/tickets"])  # a hub id: not read here
    assert (cfg.data.num_train, cfg.data.num_dev, cfg.data.num_test) == (1000, 500, 1000)
    preset = load_config(None, [])
    assert (preset.data.num_train, preset.data.num_dev, preset.data.num_test) == (1000, 500, 1000)
    assert (preset.train.steps, preset.train.lr, preset.train.batch_size) == (1000, 1e-6, 16)
    assert preset.mechanism.subsets == 128
