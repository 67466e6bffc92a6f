"""paczero table (paczero.studies.tables): a run's figures and the statistics of a row."""

import pytest

from paczero.studies.tables import Stat, run_values


def _result(privacy):
    return {"metrics": {"metric": "accuracy", "test": {"accuracy": 0.8, "loss": 0.4},
                        "dev_best": {"accuracy": 0.7}},
            "privacy": {"posterior_bound": 0.6, "unanimity_fraction": None, **privacy},
            "timing": {"step_s_median": 0.1}}  # fmt: skip


def test_run_values_take_each_familys_figures():
    pac = run_values(_result({"framework": "pac", "mi_bound": 0.3, "matched_epsilon": 1.9}))
    assert (pac["test"], pac["dev_best"], pac["mi"], pac["epsilon"]) == (0.8, 0.7, 0.3, 1.9)
    dp = {"framework": "dp", "matched_mi": 0.34, "spent": {"epsilon": 2.0}}
    assert (run_values(_result(dp))["mi"], run_values(_result(dp))["epsilon"]) == (0.34, 2.0)
    none = run_values(_result({"framework": "none"}))
    assert none["mi"] is None and none["epsilon"] is None and none["step_s"] == 0.1


def test_a_stat_is_the_mean_and_sample_std_of_its_values():
    stat = Stat([1.0, 2.0, 3.0], [0, 1, 2])
    assert (stat.n, stat.mean) == (3, 2.0) and stat.std == pytest.approx(1.0)
    assert Stat([4.0]).std is None and Stat().mean is None
    assert stat.to_json() == {"mean": 2.0, "std": stat.std, "n": 3, "values": [1.0, 2.0, 3.0]}


def test_a_zero_shot_cell_of_ones_own_task_names_no_template():
    from paczero.studies.spec import Cell
    from paczero.studies.tables import cell_method

    def cell(kind, config, sets=()):
        return Cell("c", kind, "base", config, list(sets), [0])

    own = {"task": {"file": "/x/tickets-task.yaml"}}
    assert cell_method(cell("eval", own)) == "zero-shot"
    assert cell_method(cell("eval", {"task": {"name": "sst2"}})) == "zero-shot (mezo template)"
    review = cell("eval", {}, ["task.template=review"])
    assert cell_method(review) == "zero-shot (review template)"
    assert cell_method(cell("train", {})) == "paczero-zpl"  # private by default
    assert cell_method(cell("train", own, ["mechanism.name=mezo"])) == "mezo"


def test_the_footnote_promises_a_zero_shot_dev_figure_only_where_the_column_has_one():
    """Issue 36 item 18: an eval cell evaluates test only unless its splits add dev."""
    from paczero.studies.tables import Row, markdown

    def zero_shot(name: str, dev: float | None) -> Row:
        row = Row(name, "eval", "zero-shot", "accuracy", 1, [])
        row.finished = 1
        row.stats["test"] = Stat([0.6], [0])
        row.stats["dev_best"] = Stat([dev], [0]) if dev is not None else Stat()
        return row

    trained = Row("zpl", "train", "paczero-zpl", "accuracy", 1, [])
    test_only = markdown([trained, zero_shot("zs", None)], None)
    assert "| zs | zero-shot | 1 | 0.600 | - |" in test_only
    assert "dev-best there is the dev metric" not in test_only
    assert "splits: [test, dev]" in test_only
    with_dev = markdown([zero_shot("zs", 0.7)], None)
    assert "| zs | zero-shot | 1 | 0.600 | 0.700 |" in with_dev
    assert "dev-best there is the dev metric." in with_dev
    assert "Zero-shot" not in markdown([trained], None)
