"""Plots for every run (issue #17 item 5): `train` draws training.png; `paczero plot RUN...`
shows the loss estimate, the dev metric, the unanimity and the privacy spent against steps."""

import json

import matplotlib.figure
import pytest

from paczero.cli import main
from paczero.records import release_records
from paczero.report import privacy_curve
from paczero.trainer import train

from sizes import small_run

SMALL = small_run("train.steps=4", "train.eval_every=2")
MI = ["mechanism.name=paczero-mi", "mechanism.budget=0.3", "mechanism.subsets=8"]
MI += ["train.batch_size=full"]
ZPL = ["mechanism.name=paczero-zpl", "mechanism.subsets=4", "train.batch_size=full"]
DP = ["mechanism.name=dpzero", "mechanism.clip=5", "mechanism.expected_batch=3"]
DP += ["mechanism.epsilon=2", "mechanism.accountant=rdp"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    made = {}
    for name, sets in (("mezo", []), ("mi", MI), ("zpl", ZPL), ("dp", DP)):
        made[name] = train("smoke", out=root / name, overrides=[*SMALL, *sets], progress=False)
    return made


@pytest.fixture
def drawn(monkeypatch):
    """The y labels of every figure saved."""
    figures = []
    real = matplotlib.figure.Figure.savefig

    def savefig(self, *args, **kwargs):
        figures.append([ax.get_ylabel() for ax in self.axes])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    return figures


def _log(run):
    return release_records(json.loads(x) for x in (run.run_dir / "releases.jsonl").open())


def _path(run):
    return run.run_dir


def test_every_run_draws_training_png(runs):
    for result in runs.values():
        png = result.run_dir / "training.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_privacy_spent_against_steps_comes_from_the_public_log(runs):
    mi = privacy_curve(_path(runs["mi"]), _log(runs["mi"]))
    assert mi["kind"] == "mi" and mi["limit"] == 0.3  # the budget: the guarantee
    assert mi["values"] == [r.cumulative for r in _log(runs["mi"])]
    zpl = privacy_curve(_path(runs["zpl"]), _log(runs["zpl"]))
    assert zpl["values"] == [0.0] * 4 and zpl["limit"] == 0.0
    dp = privacy_curve(_path(runs["dp"]), _log(runs["dp"]))
    assert dp["kind"] == "epsilon" and dp["limit"] == 2.0
    assert dp["values"] == [r.epsilon for r in _log(runs["dp"])]
    assert dp["values"] == sorted(dp["values"]) and dp["values"][-1] <= 2.0 + 1e-9
    assert privacy_curve(_path(runs["mezo"]), _log(runs["mezo"])) is None


def test_plot_one_run_and_several_side_by_side(runs, tmp_path, drawn, capsys):
    assert main(["plot", str(runs["mi"].run_dir), "--out", str(tmp_path / "mi.png")]) == 0
    labels = drawn[-1]
    assert labels == ["loss estimate", "subsets unanimous", "MI, nats", "dev accuracy"]
    dirs = [str(runs[k].run_dir) for k in ("mezo", "mi", "zpl", "dp")]
    assert main(["plot", *dirs, "--out", str(tmp_path / "all.png")]) == 0
    labels = drawn[-1]
    assert labels == [
        "loss",
        "dev accuracy",
        "unanimous (running)",
        "MI charged, nats",
        "DP epsilon spent",
    ]
    assert (tmp_path / "all.png").is_file() and "all.png" in capsys.readouterr().out
    assert main(["plot", str(runs["dp"].run_dir), "--out", str(tmp_path / "dp.png")]) == 0
    assert drawn[-1] == ["dev loss", "DP epsilon", "dev accuracy"]  # no secret batch loss


def test_labels_of_sweep_cells_with_the_same_bound_do_not_overlap():
    """Issue 36 item 18: cells at one bound (MI 0.33 and DP at the matched epsilon) sit on
    one vertical line; their labels are stacked, each with a line to its point."""
    import itertools

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from paczero.studies.plots import label_points

    points = [  # docs/results.md's table: the test accuracy of each cell
        (0.8819, 0.516, "mi0.33"), (0.8818, 0.519, "dpzero-eps2.01"),
        (0.8819, 0.529, "mi0.33-lr0.01"), (0.8818, 0.544, "dpaggzo-eps2.01"),
        (0.9982, 0.519, "mi0.68"), (0.9982, 0.523, "dpzero-eps6.32"),
        (0.9982, 0.529, "mi0.68-lr0.01"), (0.9982, 0.538, "dpaggzo-eps6.32"),
        (0.5, 0.567, "zpl"),
    ]  # fmt: skip
    fig, ax = plt.subplots(figsize=(5, 3.8))  # one panel of the sweep figure
    ax.plot([p[0] for p in points], [p[1] for p in points], "o")
    ax.set_ylim(0.45, 0.63)  # the error bars' span
    label_points(ax, points)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # the text's own box (an annotation's extent also covers its line to the point)
    boxes = {t.get_text(): Text.get_window_extent(t, renderer) for t in ax.texts}
    assert set(boxes) == {p[2] for p in points}
    for (a, box_a), (b, box_b) in itertools.combinations(boxes.items(), 2):
        assert not box_a.overlaps(box_b), (a, b)
    plt.close(fig)
