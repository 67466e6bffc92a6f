"""`paczero table SWEEP_DIR`: one row per cell, mean +- sample std over its seeds.

Columns: the test metric of the dev-best model, the dev-best metric, the
membership-inference bound, the mutual information (PACZero: the bound; DP: the matched
value), epsilon (DP: spent; PACZero: matched), the unanimity fraction and the median step
time. Eval cells (zero-shot reference rows) have metrics only. ``--baseline CELL`` adds
each cell's test gain over that cell, paired by seed (the seeds draw different pools, dev
and test sets, so the spread of the gain is smaller than that of either row). Reads JSON
files only.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paczero.errors import UserError
from paczero.mechanisms import DEFAULT_MECHANISM
from paczero.privacy.reports import PrivacyReport
from paczero.runs import evaluation, finished_result
from paczero.studies.folder import open_sweep
from paczero.studies.spec import Cell, Sweep
from paczero.tasks.options import DEFAULT_TEMPLATE

FORMATS = ("markdown", "csv", "json")
QUANTITIES = ("test", "dev_best", "mia_bound", "mi", "epsilon", "unanimity", "step_s")


@dataclass
class Stat:
    values: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)  # the seed of each value (pairs rows)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1); None below two values."""
        return statistics.stdev(self.values) if len(self.values) >= 2 else None

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "values": self.values}


@dataclass
class Row:
    cell: str
    kind: str
    method: str
    metric: str
    planned: int
    settings: list[str]
    stats: dict[str, Stat] = field(default_factory=lambda: {q: Stat() for q in QUANTITIES})
    finished: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "kind": self.kind,
            "method": self.method,
            "metric": self.metric,
            "n": self.finished,
            "planned": self.planned,
            "set": self.settings,
            **{q: s.to_json() for q, s in self.stats.items()},
        }


def run_values(result: dict[str, Any]) -> dict[str, float | None]:
    """The table's quantities of one finished run (its result.json)."""
    metrics, privacy = result["metrics"], result["privacy"]
    metric = metrics["metric"]
    mi, epsilon = PrivacyReport.from_json(privacy).headline()
    dev_best = metrics.get("dev_best") or {}
    return {
        "test": metrics["test"].get(metric),
        "dev_best": dev_best.get(metric),
        "mia_bound": privacy.get("posterior_bound"),
        "mi": mi,
        "epsilon": epsilon,
        "unanimity": privacy.get("unanimity_fraction"),
        "step_s": (result.get("timing") or {}).get("step_s_median"),
    }


def collect(sweep: Sweep) -> list[Row]:
    rows = []
    for cell in sweep.cells:
        row = _row(sweep, cell)
        rows.append(row)
    return rows


def cell_method(cell: Cell) -> str:
    """How the table names a cell's method: its mechanism, or a zero-shot evaluation (of a
    preset's template; a task of one's own has its prompt, no template)."""
    if cell.kind == "eval":
        task = cell.config.get("task") or {}
        template = task.get("template", DEFAULT_TEMPLATE)
        for assignment in cell.set:
            if assignment.startswith("task.template="):
                template = assignment.partition("=")[2].strip("'\"")
        own = task.get("type") or task.get("file")
        return "zero-shot" if own else f"zero-shot ({template} template)"
    method = str((cell.config.get("mechanism") or {}).get("name", DEFAULT_MECHANISM))
    for assignment in cell.set:
        if assignment.startswith("mechanism.name="):
            method = assignment.partition("=")[2].strip("'\"")
    return method


def _row(sweep: Sweep, cell: Cell) -> Row:
    method = cell_method(cell)
    row = Row(cell.name, cell.kind, method, "accuracy", len(cell.seeds), cell.set)
    for seed in cell.seeds:
        run = sweep.run_path(cell, seed)
        values = _eval_values(run) if cell.kind == "eval" else _train_values(run)
        if values is None:
            continue
        metric, values = values
        row.metric = metric
        row.method = str(values.pop("method", None) or row.method)
        row.finished += 1
        for key, value in values.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                row.stats[key].values.append(float(value))
                row.stats[key].seeds.append(seed)
    return row


def add_gains(rows: list[Row], baseline: str) -> None:
    """Each row's test gain over the ``baseline`` cell, seed by seed (the seeds both have)."""
    base = next((r for r in rows if r.cell == baseline), None)
    if base is None:
        raise UserError(
            f"--baseline '{baseline}' is not a cell of this sweep: "
            f"{', '.join(r.cell for r in rows)}"
        )
    reference = dict(zip(base.stats["test"].seeds, base.stats["test"].values, strict=True))
    for row in rows:
        test = row.stats["test"]
        pairs = [(s, v) for s, v in zip(test.seeds, test.values, strict=True) if s in reference]
        row.stats["gain"] = Stat([v - reference[s] for s, v in pairs], [s for s, _ in pairs])


def _train_values(run: Path) -> tuple[str, dict[str, float | None]] | None:
    result = finished_result(run)
    if result is None:
        return None
    values: dict[str, Any] = run_values(result)
    values["method"] = result["privacy"].get("mechanism")
    return result["metrics"]["metric"], values


def _eval_values(run: Path) -> tuple[str, dict[str, float | None]] | None:
    data = evaluation(run)
    if data is None:
        return None
    metric = data["metric"]
    values: dict[str, float | None] = {q: None for q in QUANTITIES}
    values["test"] = (data.get("test") or {}).get(metric)
    values["dev_best"] = (data.get("dev") or {}).get(metric)
    return metric, values


# ---------------------------------------------------------------- formats


def table(path: str | Path, fmt: str = "markdown", baseline: str | None = None) -> str:
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    sweep = open_sweep(path)
    rows = collect(sweep)
    if baseline is not None:
        add_gains(rows, baseline)
    return {"markdown": markdown, "csv": to_csv, "json": to_json}[fmt](rows, sweep)


def _metric_label(rows: list[Row]) -> str:
    metrics = {r.metric for r in rows if r.finished}
    return metrics.pop() if len(metrics) == 1 else "metric"


def _fmt(stat: Stat, digits: int, percent: bool = False, signed: bool = False) -> str:
    if stat.mean is None:
        return "-"
    scale = 100.0 if percent else 1.0
    suffix = "%" if percent else ""
    mean = f"{scale * stat.mean:{'+' if signed else ''}.{digits}f}{suffix}"
    if stat.std is None or stat.std * scale < 0.5 * 10**-digits:
        return mean
    return f"{mean} ± {scale * stat.std:.{digits}f}"


def _fmt_sig(stat: Stat) -> str:
    if stat.mean is None:
        return "-"
    mean = f"{stat.mean:.3g}"
    if stat.std is None or stat.std < 5e-4 * max(abs(stat.mean), 1e-12):
        return mean
    return f"{mean} ± {stat.std:.2g}"


def markdown(rows: list[Row], sweep: Sweep) -> str:
    metric = _metric_label(rows)
    gains = any("gain" in r.stats for r in rows)
    head = ["cell", "method", "n", f"test {metric}"]
    head += ["test gain (paired)"] if gains else []
    head += [
        f"dev-best {metric}", "MIA bound", "MI (nats)", "epsilon", "unanimous", "step (s)",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s = r.stats
        n = f"{r.finished}" if r.finished == r.planned else f"{r.finished}/{r.planned}"
        cells = [r.cell, r.method, n, _fmt(s["test"], 3)]
        cells += [_fmt(s["gain"], 3, signed=True)] if gains else []
        cells += [
            _fmt(s["dev_best"], 3), _fmt(s["mia_bound"], 4), _fmt_sig(s["mi"]),
            _fmt_sig(s["epsilon"]), _fmt(s["unanimity"], 1, percent=True), _fmt_sig(s["step_s"]),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Mean ± sample std over the n finished seeds. MI: the bound for PACZero, the matched "
        "value for DP; epsilon: spent for DP, matched for PACZero; MIA bound: the "
        "membership-inference success bound (prior 0.5)."
        + _zero_shot_note(rows)
        + (" Test gain: the test metric minus the baseline cell's, seed by seed." if gains else "")
    )
    return "\n".join(lines)


def _zero_shot_note(rows: list[Row]) -> str:
    """What the dev-best column holds for zero-shot rows: the dev metric where the cell
    evaluated dev (an eval cell evaluates test only unless its splits add dev)."""
    evals = [r for r in rows if r.kind == "eval"]
    if not evals:
        return ""
    with_dev = [r for r in evals if r.stats["dev_best"].n]
    if len(with_dev) == len(evals):
        return " Zero-shot rows: no training; dev-best there is the dev metric."
    if with_dev:
        return (
            " Zero-shot rows: no training; dev-best there is the dev metric where the cell "
            "evaluated dev (splits: [test, dev]), - otherwise."
        )
    return " Zero-shot rows: no training, test only (splits: [test, dev] adds a dev figure)."


def to_csv(rows: list[Row], sweep: Sweep) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    quantities = [*QUANTITIES, *(["gain"] if any("gain" in r.stats for r in rows) else [])]
    head = ["cell", "kind", "method", "metric", "n", "planned"]
    for q in quantities:
        head += [f"{q}_mean", f"{q}_std"]
    writer.writerow(head)
    for r in rows:
        line: list[Any] = [r.cell, r.kind, r.method, r.metric, r.finished, r.planned]
        for q in quantities:
            stat = r.stats[q]
            line += ["" if stat.mean is None else repr(stat.mean)]
            line += ["" if stat.std is None else repr(stat.std)]
        writer.writerow(line)
    return buffer.getvalue().rstrip("\n")


def to_json(rows: list[Row], sweep: Sweep) -> str:
    out = {
        "sweep": str(sweep.path),
        "description": sweep.description,
        "rows": [r.to_json() for r in rows],
    }
    return json.dumps(out, indent=2)
