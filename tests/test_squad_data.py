import json
import os
import sys

import numpy as np
import pytest

from paczero.config import DataConfig
from paczero.data import load_splits, load_squad, read_squad_json, split_by_article
from paczero.errors import UserError

DATA_DIR = os.environ.get("PACZERO_DATA_DIR")
needs_data = pytest.mark.skipif(
    not DATA_DIR, reason="PACZERO_DATA_DIR is not set (CI sets it to ../shared/data)"
)


def _article(title, n_paragraphs, n_questions):
    return {
        "title": title,
        "paragraphs": [
            {
                "context": f"{title} paragraph {p}.",
                "qas": [
                    {
                        "id": f"{title}-{p}-{q}",
                        "question": f"Question {q} on {title} {p}?",
                        "answers": [
                            {"answer_start": 0, "text": f"{title} {p}"},
                            {"answer_start": 0, "text": title},
                        ],
                    }
                    for q in range(n_questions)
                ],
            }
            for p in range(n_paragraphs)
        ],
    }


def _write(folder, name, articles):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"version": "1.1", "data": articles}))


@pytest.fixture
def dev_only(tmp_path):
    """12 articles of 2-6 paragraphs x 3 questions, as <dir>/squad/dev-v1.1.json."""
    _write(
        tmp_path / "squad", "dev-v1.1.json", [_article(f"A{i}", 2 + i % 5, 3) for i in range(12)]
    )
    return tmp_path


def _cfg(root, **kw):
    return DataConfig(dir=str(root), **{"num_train": 20, "num_dev": 10, "num_test": 15, **kw})


def _articles(rows):
    return {r["title"] for r in rows}


def test_flattened_rows(dev_only):
    rows = read_squad_json(dev_only / "squad" / "dev-v1.1.json")
    assert len(rows) == sum((2 + i % 5) * 3 for i in range(12))
    assert rows[0] == {
        "id": "A0-0-0",
        "title": "A0",
        "context": "A0 paragraph 0.",
        "question": "Question 0 on A0 0?",
        "answers": ["A0 0", "A0"],
    }


def test_dev_derived_split_shares_no_article(dev_only):
    splits = load_splits("squad", _cfg(dev_only))
    assert splits.provenance == "dev-derived" and splits.summary()["provenance"] == "dev-derived"
    assert (len(splits.pool), len(splits.dev), len(splits.test)) == (20, 10, 15)
    pool, dev, test = (_articles(p) for p in (splits.pool, splits.dev, splits.test))
    assert pool and dev and test
    assert not (pool & dev) and not (pool & test) and not (dev & test)
    contexts = [{r["context"] for r in p} for p in (splits.pool, splits.dev, splits.test)]
    assert not (contexts[0] & contexts[1]) and not (contexts[0] & contexts[2])
    ids = [r["id"] for r in splits.pool + splits.dev + splits.test]
    assert len(set(ids)) == len(ids)


def test_dev_derived_split_is_a_function_of_the_seed(dev_only):
    a = load_splits("squad", _cfg(dev_only))
    b = load_splits("squad", _cfg(dev_only))
    c = load_splits("squad", _cfg(dev_only, seed=1))
    assert a.pool == b.pool and a.dev == b.dev and a.test == b.test
    assert np.array_equal(a.test_indices, b.test_indices)
    assert [r["id"] for r in a.pool] != [r["id"] for r in c.pool]


def test_dev_derived_split_too_small(dev_only):
    with pytest.raises(UserError, match=r"article-level split.*for data.num_train.*lower it"):
        load_splits("squad", _cfg(dev_only, num_train=100))


def test_train_file_gives_official_split(dev_only):
    _write(dev_only / "squad", "train-v1.1.json", [_article(f"T{i}", 5, 4) for i in range(3)])
    splits = load_splits("squad", _cfg(dev_only))
    assert splits.provenance == "official"
    assert _articles(splits.pool) | _articles(splits.dev) <= {"T0", "T1", "T2"}
    assert all(r["title"].startswith("A") for r in splits.test)
    assert len(splits.test) == 15


def test_missing_file_is_user_error(tmp_path):
    with pytest.raises(UserError, match=r"dev-v1\.1\.json not found.*PACZERO_DATA_DIR"):
        load_squad(DataConfig(dir=str(tmp_path)))
    (tmp_path / "dev-v1.1.json").write_text("{}")
    with pytest.raises(UserError, match="not an official SQuAD v1.1 JSON"):
        load_squad(DataConfig(dir=str(tmp_path)))


def test_hub_rows_become_examples(monkeypatch):
    import types

    from paczero import data

    module = types.ModuleType("datasets")
    split = {
        "id": ["q1"],
        "title": ["Super_Bowl_50"],
        "context": ["Denver won."],
        "question": ["Who won?"],
        "answers": [{"text": ["Denver", "Denver"], "answer_start": [0, 0]}],
    }
    calls = []

    def load_dataset(*args):
        calls.append(args)
        return {"train": split, "validation": split}

    module.load_dataset = load_dataset
    monkeypatch.setitem(sys.modules, "datasets", module)
    data._load_squad_hub.cache_clear()
    try:
        got = load_squad(DataConfig(dir=None))
    finally:
        data._load_squad_hub.cache_clear()
    assert calls == [("rajpurkar/squad",)]
    row = {
        "id": "q1",
        "title": "Super_Bowl_50",
        "context": "Denver won.",
        "question": "Who won?",
        "answers": ["Denver", "Denver"],
    }
    assert got == {"train": [row], "validation": [row]}


@needs_data
def test_real_dev_file_split_by_article():
    rows = read_squad_json(os.path.join(DATA_DIR, "squad", "dev-v1.1.json"))
    assert len(rows) == 10570 and len(_articles(rows)) == 48
    assert rows[0]["question"] == "Which NFL team represented the AFC at Super Bowl 50?"
    assert rows[0]["answers"] == ["Denver Broncos"] * 3
    splits = split_by_article(list(rows), DataConfig(dir=DATA_DIR))  # 1000 / 500 / 1000
    assert (len(splits.pool), len(splits.dev), len(splits.test)) == (1000, 500, 1000)
    pool, dev, test = (_articles(p) for p in (splits.pool, splits.dev, splits.test))
    assert not (pool & dev) and not (pool & test) and not (dev & test)
    assert len(pool) >= 5 and len(dev) >= 3 and len(test) >= 5  # many articles per part


def test_article_partition_does_not_depend_on_the_sizes(dev_only):
    """Evaluating with another data.num_test must not move pool articles into the test."""
    a = load_splits("squad", _cfg(dev_only, num_test=15))
    b = load_splits("squad", _cfg(dev_only, num_test=40, num_dev=5))
    assert a.pool == b.pool
    assert not _articles(b.test) & (_articles(a.pool) | _articles(a.dev))
    assert not _articles(a.test) & _articles(b.pool)
