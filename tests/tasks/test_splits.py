"""Pool, dev and test drawn from a task's data: sizes, disjoint, seeded."""

import numpy as np
import pytest

from paczero.errors import UserError
from paczero.tasks import DataConfig
from paczero.tasks.splits import hub_unreachable, sample_splits, stamped
from paczero.tasks.sst2 import load_sst2, synthetic_sst2


def test_splits_sizes_disjoint_and_seeded(glue_sst2):
    glue = glue_sst2
    cfg = DataConfig(num_train=1000, num_dev=500, num_test=1000, seed=3)
    splits = sample_splits(glue, cfg)
    assert (len(splits.pool), len(splits.dev), len(splits.test)) == (1000, 500, 872)
    assert splits.test_is_whole_split and splits.test_requested == 1000
    assert not set(splits.pool_indices) & set(splits.dev_indices)
    assert len(set(splits.pool_indices)) == 1000
    assert splits.pool == [glue["train"][i] for i in splits.pool_indices]

    again = sample_splits(glue, cfg)
    assert np.array_equal(again.pool_indices, splits.pool_indices)
    assert np.array_equal(again.dev_indices, splits.dev_indices)

    other = sample_splits(glue, cfg.model_copy(update={"seed": 4}))
    assert not np.array_equal(other.pool_indices, splits.pool_indices)

    small = sample_splits(glue, cfg.model_copy(update={"num_test": 100}))
    assert len(small.test) == 100 and not small.test_is_whole_split
    assert len(set(small.test_indices)) == 100


def test_too_small_train_split():
    data = synthetic_sst2(20, 10, seed=0)
    with pytest.raises(UserError, match="data.num_train"):
        sample_splits(data, DataConfig(source="synthetic", num_train=15, num_dev=10))


def test_synthetic_source_through_config():
    cfg = DataConfig(source="synthetic", num_train=40, num_dev=10, num_test=20, seed=0)
    splits = sample_splits(load_sst2(cfg), cfg)
    assert (len(splits.pool), len(splits.dev), len(splits.test)) == (40, 10, 20)


def test_a_summary_and_the_coverage_say_what_the_guarantee_covers():
    cfg = DataConfig(source="synthetic", num_train=12, num_dev=4, num_test=6, seed=0)
    splits = sample_splits(synthetic_sst2(20, 10, seed=0), cfg)
    assert splits.summary() == {
        "pool": 12,
        "dev": 4,
        "test": 6,
        "test_requested": 6,
        "test_is_whole_split": False,
        "provenance": "official",
    }
    rows = splits.coverage()
    assert rows["unit"] == "row" and rows["pool_units"] == 12 and rows["unit_field"] is None
    splits.units, splits.unit_field = [np.array([0, 1]), np.arange(2, 12)], "user"
    grouped = splits.coverage()
    assert grouped["level"] == "user-level" and grouped["pool_units"] == 2


def test_missing_files_and_an_unreachable_hub_are_one_line_with_the_fix(tmp_path):
    with pytest.raises(UserError, match=r"train file .* not found; set PACZERO_DATA_DIR"):
        stamped(tmp_path / "train.tsv", "train")
    path = tmp_path / "dev.tsv"
    path.write_text("x")
    assert stamped(path, "dev")[0] == str(path.resolve())
    err = hub_unreachable("SST-2", ConnectionError("no route\nmore detail"))
    assert str(err).startswith("SST-2: no local data") and "(no route)" in str(err)
    assert "\n" not in str(err)
