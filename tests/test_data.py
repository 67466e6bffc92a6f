import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from paczero.config import DataConfig
from paczero.data import load_sst2, read_tsv, sample_splits, synthetic_sst2
from paczero.errors import UserError

DATA_DIR = os.environ.get("PACZERO_DATA_DIR")
needs_data = pytest.mark.skipif(
    not DATA_DIR, reason="PACZERO_DATA_DIR is not set (CI sets it to ../shared/data)"
)


@pytest.fixture(scope="module")
def sst2():
    return load_sst2(DataConfig(dir=DATA_DIR))


@needs_data
def test_glue_files_golden_rows(sst2):
    assert len(sst2["train"]) == 67349 and len(sst2["validation"]) == 872
    assert sst2["train"][:3] == [
        {"sentence": "hide new secretions from the parental units ", "label": 0},
        {"sentence": "contains no wit , only labored gags ", "label": 0},
        {
            "sentence": "that loves its characters and communicates something rather "
            "beautiful about human nature ",
            "label": 1,
        },
    ]
    assert sst2["validation"][1] == {"sentence": "unflinchingly bleak and desperate ", "label": 0}
    assert Counter(r["label"] for r in sst2["validation"]) == {1: 444, 0: 428}


@needs_data
def test_sst2_folder_itself_is_accepted(sst2):
    direct = load_sst2(DataConfig(dir=str(Path(DATA_DIR) / "sst2")))
    assert direct["validation"] == sst2["validation"]
    assert len(direct["train"]) == len(sst2["train"])


@needs_data
def test_splits_sizes_disjoint_and_seeded(sst2):
    cfg = DataConfig(dir=DATA_DIR, num_train=1000, num_dev=500, num_test=1000, seed=3)
    splits = sample_splits(sst2, cfg)
    assert (len(splits.pool), len(splits.dev), len(splits.test)) == (1000, 500, 872)
    assert splits.test_is_whole_split and splits.test_requested == 1000
    assert not set(splits.pool_indices) & set(splits.dev_indices)
    assert len(set(splits.pool_indices)) == 1000
    assert splits.pool == [sst2["train"][i] for i in splits.pool_indices]

    again = sample_splits(sst2, cfg)
    assert np.array_equal(again.pool_indices, splits.pool_indices)
    assert np.array_equal(again.dev_indices, splits.dev_indices)

    other = sample_splits(sst2, cfg.model_copy(update={"seed": 4}))
    assert not np.array_equal(other.pool_indices, splits.pool_indices)

    small = sample_splits(sst2, cfg.model_copy(update={"num_test": 100}))
    assert len(small.test) == 100 and not small.test_is_whole_split
    assert len(set(small.test_indices)) == 100


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_malformed_row_names_file_and_line(tmp_path):
    bad = _write(tmp_path / "sst2" / "train.tsv", "sentence\tlabel\ngood film \t1\nno label\n")
    _write(tmp_path / "sst2" / "dev.tsv", "sentence\tlabel\nok \t0\n")
    with pytest.raises(UserError, match=r"train\.tsv line 3: expected 2 tab-separated .* got 1"):
        load_sst2(DataConfig(dir=str(tmp_path)))
    assert str(bad.resolve()) in _message(lambda: read_tsv(bad))


def test_bad_label_and_header(tmp_path):
    bad = _write(tmp_path / "a.tsv", "sentence\tlabel\nfine \t1\nodd \t2\n")
    with pytest.raises(UserError, match=r"a\.tsv line 3: label must be 0 or 1, got '2'"):
        read_tsv(bad)
    header = _write(tmp_path / "b.tsv", "text\ty\nfine \t1\n")
    with pytest.raises(UserError, match=r"b\.tsv line 1: expected the header"):
        read_tsv(header)


def test_quotes_are_literal(tmp_path):
    rows = read_tsv(_write(tmp_path / "q.tsv", 'sentence\tlabel\n" a quoted film \t1\n\n'))
    assert rows == ({"sentence": '" a quoted film ', "label": 1},)


def test_missing_data_dir_and_file(tmp_path):
    with pytest.raises(UserError, match="PACZERO_DATA_DIR"):
        load_sst2(DataConfig(dir=str(tmp_path / "nowhere")))
    _write(tmp_path / "sst2" / "train.tsv", "sentence\tlabel\n")
    with pytest.raises(UserError, match=r"dev\.tsv not found.*PACZERO_DATA_DIR"):
        load_sst2(DataConfig(dir=str(tmp_path)))


def test_too_small_train_split():
    data = synthetic_sst2(20, 10, seed=0)
    with pytest.raises(UserError, match="data.num_train"):
        sample_splits(data, DataConfig(source="synthetic", num_train=15, num_dev=10))


def test_synthetic_balanced_deterministic_separable():
    data = synthetic_sst2(200, 50, seed=1)
    assert data == synthetic_sst2(200, 50, seed=1)
    assert data != synthetic_sst2(200, 50, seed=2)
    assert Counter(r["label"] for r in data["train"]) == {0: 100, 1: 100}
    assert Counter(r["label"] for r in data["validation"]) == {0: 25, 1: 25}
    positive = {"good", "great", "wonderful", "excellent"}
    for row in data["train"]:
        words = set(row["sentence"].split())
        assert bool(words & positive) <= bool(row["label"])  # positive words only in label 1
        assert row["sentence"].endswith(" ")  # GLUE format


def test_synthetic_source_through_config():
    cfg = DataConfig(source="synthetic", num_train=40, num_dev=10, num_test=20, seed=0)
    splits = sample_splits(load_sst2(cfg), cfg)
    assert (len(splits.pool), len(splits.dev), len(splits.test)) == (40, 10, 20)


def _message(fn) -> str:
    try:
        fn()
    except UserError as err:
        return str(err)
    raise AssertionError("no UserError")


@pytest.fixture
def fake_hub(monkeypatch):
    """Stand-in for the `datasets` package: tests never touch the network."""
    import types

    from paczero import data

    module = types.ModuleType("datasets")
    monkeypatch.setitem(sys.modules, "datasets", module)
    data._load_hub.cache_clear()
    yield module
    data._load_hub.cache_clear()


def test_hub_rows_become_examples(fake_hub):
    calls = []

    def load_dataset(*args):
        calls.append(args)
        split = {"sentence": ["fine film ", "dull "], "label": [1, 0], "idx": [0, 1]}
        return {"train": split, "validation": split}

    fake_hub.load_dataset = load_dataset
    got = load_sst2(DataConfig(dir=None))
    assert calls == [("nyu-mll/glue", "sst2")]
    assert got["validation"] == [
        {"sentence": "fine film ", "label": 1},
        {"sentence": "dull ", "label": 0},
    ]


def test_offline_without_local_data_is_user_error(fake_hub):
    def load_dataset(*args):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    fake_hub.load_dataset = load_dataset
    with pytest.raises(UserError, match=r"HF hub is not reachable.*PACZERO_DATA_DIR=\.\./shared"):
        load_sst2(DataConfig(dir=None))
