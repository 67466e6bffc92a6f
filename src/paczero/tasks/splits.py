"""The pool / dev / test split every task reads into, and what the readers share.

Sampling is public randomness: the pool, dev and test rows are a pure function of
``data.seed`` and the data. The privacy unit is one row, or, with ``data.group_field``,
every row that shares the field's value (a user, a patient): the pool is sampled by units,
and ``Splits.units`` holds each pool unit's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from paczero.errors import UserError

if TYPE_CHECKING:
    from paczero.tasks.options import DataConfig

SETUP_HINT = "set PACZERO_DATA_DIR (e.g. PACZERO_DATA_DIR=../shared/data) or data.dir"


def hub_unreachable(what: str, err: BaseException) -> UserError:
    """A preset without local files whose hub download failed: one line, with the fix."""
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    return UserError(
        f"{what}: no local data (data.dir is unset) and the HF hub is not reachable ({first}); "
        f"{SETUP_HINT}"
    )


def stamped(path: str | Path, what: str) -> tuple[str, int]:
    """(absolute path, modification time): the key of the parsed-file caches."""
    path = Path(path).resolve()
    try:
        return str(path), path.stat().st_mtime_ns
    except OSError:
        raise UserError(f"{what} file {path} not found; {SETUP_HINT}") from None


@dataclass
class Splits:
    """The private pool, the public dev set (disjoint from the pool), and the test set."""

    pool: list[dict]
    dev: list[dict]
    test: list[dict]
    pool_indices: np.ndarray = field(repr=False)  # rows of the train split
    dev_indices: np.ndarray = field(repr=False)  # rows of the train split (or the dev file)
    test_indices: np.ndarray = field(repr=False)  # rows of the validation split (or file)
    test_requested: int = 0
    test_is_whole_split: bool = False  # validation was no larger than num_test (SST-2: 872)
    # "official": pool/dev from the train split, test from validation; "dev-derived": all
    # three from one split, divided by article (SQuAD offline, no train file); "own data":
    # data.train (and data.dev / data.test) read by ``own_splits``
    provenance: str = "official"
    # Where the guarantee stops: dev and test rows carved from the pool's own source are
    # data of the same holder, outside the pool, so outside the guarantee.
    dev_from_pool_source: bool = True
    test_from_pool_source: bool = False
    # data.group_field: the pool positions of each privacy unit's rows (None: one row each)
    units: list[np.ndarray] | None = field(default=None, repr=False)
    unit_field: str | None = None

    def summary(self) -> dict:
        return {
            "pool": len(self.pool),
            "dev": len(self.dev),
            "test": len(self.test),
            "test_requested": self.test_requested,
            "test_is_whole_split": self.test_is_whole_split,
            "provenance": self.provenance,
        }

    def coverage(self) -> dict[str, Any]:
        """What the guarantee covers, in public terms: the unit, the number of units in the
        pool, and whether dev and test were carved from the pool's source."""
        units = len(self.pool) if self.units is None else len(self.units)
        return {
            "covers": "pool",
            "unit": "row" if self.unit_field is None else "group",
            "unit_field": self.unit_field,
            "level": "example-level" if self.unit_field is None else "user-level",
            "pool_units": units,
            "dev_from_pool_source": self.dev_from_pool_source,
            "test_from_pool_source": self.test_from_pool_source,
        }


def sample_splits(data: dict[str, list[dict]], cfg: DataConfig) -> Splits:
    """Pool and dev from train without overlap, test from validation; seeded by data.seed."""
    train, validation = data["train"], data["validation"]
    need = cfg.num_train + cfg.num_dev
    if len(train) < need:
        raise UserError(
            f"the train split has {len(train)} rows, fewer than data.num_train + "
            f"data.num_dev = {need}; lower them"
        )
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(train))
    pool_idx = np.sort(perm[: cfg.num_train])
    dev_idx = np.sort(perm[cfg.num_train : need])
    whole = len(validation) <= cfg.num_test
    if whole:
        test_idx = np.arange(len(validation))
    else:
        test_idx = np.sort(rng.choice(len(validation), cfg.num_test, replace=False))
    return Splits(
        pool=[train[i] for i in pool_idx],
        dev=[train[i] for i in dev_idx],
        test=[validation[i] for i in test_idx],
        pool_indices=pool_idx,
        dev_indices=dev_idx,
        test_indices=test_idx,
        test_requested=cfg.num_test,
        test_is_whole_split=whole,
    )
