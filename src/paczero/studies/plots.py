"""`paczero plot`: a sweep (accuracy against privacy, learning curves with a band over
seeds) or run directories side by side (one run: ``report.plot_run``)."""

from __future__ import annotations

import statistics
import textwrap
from pathlib import Path
from typing import Any

from paczero.errors import UserError
from paczero.runs import dev_history, evaluation_exists, is_training_run
from paczero.studies.spec import SWEEP_FILE

X_AXES = {
    "bound": ("mia_bound", "membership-inference success bound (prior 0.5)"),
    "epsilon": ("epsilon", "epsilon (DP: spent; PACZero: matched)"),
    "mi": ("mi", "mutual information, nats (PACZero: bound; DP: matched)"),
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(paths: list[str | Path], out: str | Path | None = None, x: str = "bound") -> Path:
    """The CLI's entry: a sweep folder, one run directory, or several run directories."""
    if not paths:
        raise UserError("give a sweep directory or one or more run directories")
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_dir():
            raise UserError(f"{path} is not a directory")
    sweeps = [p for p in paths if (p / SWEEP_FILE).is_file()]
    if sweeps:
        if len(paths) > 1:
            raise UserError("give one sweep directory, or run directories only (not both)")
        return plot_sweep(paths[0], _out_file(out, "sweep.png"), x=x)
    for path in paths:
        if evaluation_exists(path):
            raise UserError(f"{path} is a zero-shot evaluation (eval.json), not a training run")
        if not is_training_run(path):
            raise UserError(
                f"{path} is neither a sweep directory (sweep.json) nor a run directory "
                "(config.yaml, releases.jsonl)"
            )
    if len(paths) == 1:
        from paczero.report import plot_run

        return plot_run(paths[0], _out_file(out, "training.png"))
    return plot_runs(paths, _out_file(out, "comparison.png"))


def _out_file(out: str | Path | None, name: str) -> Path | None:
    """The file ``--out`` names, as it will be written: a folder gets ``name`` inside it
    (savefig would write FOLDER.png), a name without a suffix gets .png (as savefig does)."""
    if out is None:
        return None
    out = Path(out)
    if out.is_dir():
        return _new(out / name)
    out = out if out.suffix else out.with_suffix(".png")
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if out.suffix[1:].lower() not in formats:
        raise UserError(
            f"--out {out}: '{out.suffix}' is not an image format ({', '.join(formats)})"
        )
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    return _new(out)


def _new(out: Path) -> Path:
    """Never over an existing file (a run's own training.png, anything else)."""
    if out.exists() or out.is_symlink():
        raise UserError(f"--out {out} exists; choose another name or remove it first")
    return out


# ---------------------------------------------------------------- sweeps


def _band(curves: list[list[dict[str, Any]]], key: str):
    """Steps, mean and sample std over the curves that have each step."""
    by_step: dict[int, list[float]] = {}
    for curve in curves:
        for point in curve:
            if point.get(key) is not None:
                by_step.setdefault(point["step"], []).append(float(point[key]))
    steps = sorted(by_step)
    mean = [statistics.fmean(by_step[s]) for s in steps]
    std = [statistics.stdev(by_step[s]) if len(by_step[s]) > 1 else 0.0 for s in steps]
    return steps, mean, std


def label_points(ax: Any, points: list[tuple[float, float, str]]) -> None:
    """Each (x, y, cell) point's cell name beside it. Cells at one privacy value (MI 0.33
    and DP at the matched epsilon) share a vertical line: their labels are stacked in a
    column beside the highest of them, in the order of their points, each with a thin line
    to its point: to the right of the line, or to its left in the right half of the axis."""
    from matplotlib.text import OffsetFrom

    xs = [p[0] for p in points]
    tolerance = 0.01 * ((max(xs) - min(xs)) if len(xs) > 1 else 1.0)
    groups: list[list[tuple[float, float, str]]] = []
    for point in sorted(points):
        if groups and point[0] - groups[-1][0][0] <= tolerance:
            groups[-1].append(point)
        else:
            groups.append([point])
    columns: list[list[Any]] = []
    for group in groups:
        if len(group) == 1:
            px, py, cell = group[0]
            ax.annotate(cell, (px, py), fontsize=7, xytext=(4, 4), textcoords="offset points")
            continue
        group.sort(key=lambda p: -p[1])  # the highest point's label on top
        top = max(p[0] for p in group), group[0][1]
        left = len(xs) > 1 and top[0] > (max(xs) + min(xs)) / 2
        column = [
            ax.annotate(
                cell,
                (px, py),
                fontsize=7,
                xytext=(-10 if left else 10, 6 + 10 * (len(group) - 1 - k)),
                textcoords=OffsetFrom(ax.transData, top, unit="points"),
                ha="right" if left else "left",
                va="bottom",
                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"},
            )
            for k, (px, py, cell) in enumerate(group)
        ]
        columns.append(column)
    _lift_columns(ax, columns)


def _lift_columns(ax: Any, columns: list[list[Any]]) -> None:
    """A column of labels that overlaps an earlier one (two nearby lines' columns) moves
    up, 10 points at a time, until it clears them."""
    from matplotlib.text import Text

    renderer = ax.figure.canvas.get_renderer()
    placed: list[Any] = []
    for column in columns:
        for _ in range(40):
            boxes = [Text.get_window_extent(label, renderer) for label in column]
            if not any(a.overlaps(b) for a in boxes for b in placed):
                break
            for label in column:
                x, y = label.xyann
                label.xyann = (x, y + 10)
        placed += boxes


def plot_sweep(path: str | Path, out: str | Path | None = None, x: str = "bound") -> Path:
    """Test metric against privacy (one line per method, error bars over seeds; non-private
    and zero-shot cells as horizontal lines), and dev metric and dev loss against steps
    (mean over seeds with a +-1 std band)."""
    from paczero.studies.folder import open_sweep
    from paczero.studies.tables import collect

    if x not in X_AXES:
        raise UserError(f"--x must be one of {', '.join(X_AXES)}, got '{x}'")
    sweep = open_sweep(path)
    rows = collect(sweep)
    if not any(r.finished for r in rows) and not any(
        dev_history(sweep.run_path(c, s)) for c, s in sweep.runs() if c.kind == "train"
    ):
        raise UserError(f"{sweep.path} has no finished run and no dev evaluation yet")
    metric = next((r.metric for r in rows if r.finished), "accuracy")
    key, xlabel = X_AXES[x]
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if len(sweep.cells) > len(colors):  # one colour per cell, none reused
        colors = [plt.get_cmap("tab20")(i % 20) for i in range(len(sweep.cells))]

    _privacy_panel(axes[0], rows, key, xlabel, metric, colors)
    _curve_panels(axes[1:], sweep, metric, colors)
    for ax in axes:
        ax.grid(alpha=0.3)
    title = sweep.description or sweep.path.name
    fig.suptitle("\n".join(textwrap.wrap(title, 170)), fontsize=10)
    fig.tight_layout()
    out = Path(out) if out else sweep.path / "sweep.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _privacy_panel(ax, rows, key: str, xlabel: str, metric: str, colors) -> None:
    """Test metric against the privacy axis ``key``: a line per method, error bars over
    seeds; cells without a privacy figure (non-private, zero-shot) as horizontal lines."""
    methods: dict[str, list[tuple[float, float, float, str]]] = {}
    flat: list[tuple[str, float, float, str]] = []
    for row in rows:
        test = row.stats["test"]
        if test.mean is None:
            continue
        position = row.stats[key].mean
        if position is None:
            style = ":" if row.kind == "eval" else "--"
            flat.append((row.cell, test.mean, test.std or 0.0, style))
        else:
            point = (position, test.mean, test.std or 0.0, row.cell)
            methods.setdefault(row.method, []).append(point)
    for i, (method, points) in enumerate(sorted(methods.items())):
        points.sort()
        color = colors[i % len(colors)]
        ax.errorbar(
            [p[0] for p in points],
            [p[1] for p in points],
            yerr=[p[2] for p in points],
            fmt="o-",
            capsize=3,
            color=color,
            label=method,
        )
    for j, (cell, mean, std, style) in enumerate(flat):
        color = colors[(len(methods) + j) % len(colors)]
        shown = f"{cell}: {mean:.3f}" + (f" ± {std:.3f}" if std else "")
        ax.axhline(mean, ls=style, color=color, label=f"{shown} (no privacy axis)")
    label_points(ax, [(p[0], p[1], p[3]) for points in methods.values() for p in points])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"test {metric} (dev-best model)")
    ax.set_title(f"test {metric} against privacy")
    ax.legend(fontsize=7)


def _curve_panels(axes, sweep, metric: str, colors) -> None:
    """Dev metric and dev loss against steps: mean over seeds with a +-1 std band."""
    trains = [c for c in sweep.cells if c.kind == "train"]
    # cells with K directions per step are drawn against steps x K (pairs of forward
    # passes), so that a DP-AggZO row lines up with single-direction rows of equal cost
    directions = {c.name: c.resolved(c.seeds[0]).zo.directions for c in trains}
    per_pair = any(k > 1 for k in directions.values())
    xlabel = "steps × directions (pairs of forward passes)" if per_pair else "step"
    for ax, quantity, label in ((axes[0], metric, f"dev {metric}"), (axes[1], "loss", "dev loss")):
        for i, cell in enumerate(trains):
            curves = [dev_history(sweep.run_path(cell, s)) for s in cell.seeds]
            curves = [c for c in curves if c]
            if not curves:
                continue
            steps, mean, std = _band(curves, quantity)
            steps = [step * directions[cell.name] for step in steps]
            color = colors[i % len(colors)]
            ax.plot(steps, mean, "o-", ms=3, color=color, label=f"{cell.name} (n {len(curves)})")
            low = [m - s for m, s in zip(mean, std, strict=True)]
            high = [m + s for m, s in zip(mean, std, strict=True)]
            ax.fill_between(steps, low, high, color=color, alpha=0.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.set_title(f"{label}, mean ± std over seeds")
        ax.legend(fontsize=6, ncol=2 if len(trains) > 6 else 1)


# ---------------------------------------------------------------- runs side by side


def _labels(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.parent.name}/{p.name}" for p in paths]


def plot_runs(paths: list[Path], out: str | Path | None = None) -> Path:
    """Several runs on shared axes: the loss estimate (dev loss where the batch loss is
    secret, DP), the dev metric, the running unanimity fraction, and the privacy spent
    against the steps (PACZero: MI charged on the path, with the budget dashed; DP:
    epsilon, with its target dashed)."""
    from paczero.privacy.ledger import read_jsonl
    from paczero.records import release_records, says_unanimity
    from paczero.report import privacy_curve, running_mean

    runs = []
    for path, label in zip(paths, _labels(paths), strict=True):
        records = release_records(read_jsonl(path / "releases.jsonl"))
        dev = [m for m in read_jsonl(path / "metrics.jsonl") if m.get("split") == "dev"]
        runs.append((label, records, dev, privacy_curve(path, records)))
    metric = next(("f1" if "f1" in d[0] else "accuracy" for _, _, d, _ in runs if d), "accuracy")
    unanimity = any(says_unanimity(rec) for _, rec, _, _ in runs)
    kinds = {curve["kind"] for *_, curve in runs if curve}
    panels = ["loss", "dev"] + (["unanimity"] if unanimity else [])
    panels += [k for k in ("mi", "epsilon") if k in kinds]
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(8, 2.6 * len(panels) + 0.6), sharex=True, squeeze=False
    )
    axes = list(axes[:, 0])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ax_of = dict(zip(panels, axes, strict=True))
    for i, (label, records, dev, curve) in enumerate(runs):
        color = colors[i % len(colors)]
        steps = [r.step + 1 for r in records]
        ax = ax_of["loss"]
        if records and all(r.loss is not None for r in records):
            losses = [r.loss for r in records]
            _, smooth = running_mean(losses)
            ax.plot(steps, losses, lw=0.6, alpha=0.3, color=color)
            ax.plot(steps, smooth, lw=1.8, color=color, label=f"{label}: loss estimate")
        elif dev:
            ax.plot([m["step"] for m in dev], [m["loss"] for m in dev], "o--", color=color,
                    label=f"{label}: dev loss (batch loss secret)")  # fmt: skip
        if dev:
            ax_of["dev"].plot([m["step"] for m in dev], [m[metric] for m in dev], "o-",
                              color=color, label=label)  # fmt: skip
        if "unanimity" in ax_of and says_unanimity(records):
            agree = [r.agreement() for r in records]
            running = [sum(agree[: k + 1]) / (k + 1) for k in range(len(agree))]
            ax_of["unanimity"].plot(steps, running, lw=1.8, color=color, label=label)
        if curve:
            ax = ax_of[curve["kind"]]
            ax.plot(steps, curve["values"], lw=1.8, color=color, label=label)
            if curve.get("limit") is not None:
                ax.axhline(curve["limit"], ls="--", lw=1, color=color, alpha=0.6,
                           label=f"{label}: {curve['limit_label']}")  # fmt: skip
    ax_of["loss"].set_ylabel("loss")
    ax_of["dev"].set_ylabel(f"dev {metric}")
    if "unanimity" in ax_of:
        ax_of["unanimity"].set_ylabel("unanimous (running)")
        ax_of["unanimity"].set_ylim(-0.05, 1.05)
    if "epsilon" in ax_of:
        ax_of["epsilon"].set_ylabel("DP epsilon spent")
    if "mi" in ax_of:
        ax_of["mi"].set_ylabel("MI charged, nats")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    out = Path(out) if out else Path("comparison.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
