"""The privacy report, the end-of-run summary, and plots of a run directory."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from paczero.config import RunConfig
from paczero.privacy.reports import PrivacyReport
from paczero.records import ReleaseRecord, says_unanimity


def privacy_report(
    cfg: RunConfig,
    mechanism,
    kinds: Counter[str],
    unanimous: list[bool],
    secret_source: str,
    steps_run: int,
    data: dict[str, Any] | None = None,
    selection: dict[str, Any] | None = None,
) -> PrivacyReport:
    """The run's privacy report (``result.json["privacy"]`` is its ``to_json``): the run's
    bookkeeping plus the mechanism's own section (its guarantee, budget and cost;
    ``Mechanism.privacy_report``), given the splits' coverage (``data``), which data the
    guarantee covers, and the prompt selection's claim and cost (``selection``)."""
    bookkeeping: dict[str, Any] = {
        "mechanism": cfg.mechanism.name,
        "private": bool(mechanism.private),
        "prior": 0.5,
        "unanimity_fraction": (sum(unanimous) / len(unanimous)) if unanimous else None,
        "release_kinds": dict(sorted(kinds.items())),
        "releases": sum(kinds.values()),
        "steps": steps_run,
        "secret_source": secret_source,
    }
    report = mechanism.privacy_report().with_run(bookkeeping, data)
    if selection is None:
        return report
    keys = ("chosen", "rule", "candidates", "cost")
    return report.updated(selection={k: selection[k] for k in keys})


def run_privacy(
    run_path: Path, cfg: RunConfig | None, records: list[ReleaseRecord]
) -> tuple[dict[str, Any] | None, PrivacyReport, str]:
    """(result.json or None, the run's privacy report, a note when the run is unfinished).

    An unfinished run's report is the guarantee its configured mechanism proves for the
    whole planned run (which covers any prefix of it), with the spend logged so far
    (``cfg``: the run's config, read from its config.yaml when not given)."""
    import json

    from paczero.config import load_config
    from paczero.records import unanimity

    result_path = Path(run_path) / "result.json"
    if result_path.exists():
        try:
            result = json.loads(result_path.read_text())
            return result, PrivacyReport.from_json(result["privacy"]), ""
        except (OSError, ValueError, KeyError, TypeError):
            pass
    cfg = cfg if cfg is not None else load_config(str(Path(run_path) / "config.yaml"))
    mechanism = cfg.mechanism_type(
        cfg.mechanism,
        pool_size=cfg.data.num_train,
        steps=cfg.train.steps,
        directions=cfg.zo.directions,
    )
    kinds: Counter[str] = Counter(k for r in records for k in r.kinds)
    flags = unanimity(records)
    bookkeeping = {
        "mechanism": cfg.mechanism.name,
        "private": bool(mechanism.private),
        "prior": 0.5,
        "unanimity_fraction": (sum(flags) / len(flags)) if flags else None,
        "release_kinds": dict(sorted(kinds.items())),
        "releases": sum(kinds.values()),
        "steps": len(records),
        "secret_source": "see the run's result.json when it finishes",
    }
    report = mechanism.privacy_report().with_run(bookkeeping, None).spent_on(records)
    note = (
        f"The run had not finished at export ({len(records)} of {cfg.train.steps} steps "
        "logged): the guarantee is the one its mechanism proves for the whole planned run."
    )
    return None, report, note


UNTRAINED_WARNING = (
    "warning: no step beat the untrained model on dev, so the dev-best model (the one tested, "
    "exported and used by predict) is the base model at step 0; try another train.lr or more "
    "steps, or export --step final"
)


def describe_result(result: dict[str, Any], run_dir: Path | None = None) -> str:
    metrics = result["metrics"]
    metric = metrics["metric"]
    history = metrics["dev_history"]
    lines = []
    if history:
        first, best = history[0], metrics["dev_best"]
        lines.append(
            f"dev {metric}: {first[metric]:.4f} at step {first['step']} -> best "
            f"{best[metric]:.4f} at step {metrics['best_step']}"
        )
        if metrics["best_step"] == 0 and history[-1]["step"] > 0:
            lines.append(UNTRAINED_WARNING)
    test = metrics["test"]
    others = ", ".join(f"{k} {v:.4f}" for k, v in test.items() if k != metric)
    lines.append(
        f"test {metric} ({_released(metrics)}): {test[metric]:.4f}"
        + (f" ({others})" if others else "")
    )
    if result.get("selection"):
        from paczero.selection import describe

        lines.append(describe(result["selection"]))
    timing = result["timing"]
    if "withheld" in timing:
        lines.append(f"time and memory: withheld; {timing['withheld']}")
    else:
        median = timing["step_s_median"]  # None: this process took no step (a finished log)
        per_step = "no step taken" if median is None else f"{median} s per step (median)"
        lines.append(
            f"time: {timing['total_s']:.1f} s total, {per_step}; "
            f"peak memory {result['memory']['peak_rss_mb']:.0f} MB RSS"
        )
    lines.append(PrivacyReport.from_json(result["privacy"]).describe())
    if run_dir is not None:
        lines.append(f"run directory: {run_dir}")
    return "\n".join(lines)


def _released(metrics: dict[str, Any]) -> str:
    if metrics.get("select") == "final":
        return f"final model, step {metrics['best_step']}; dev metrics in private/"
    return "dev-best model"


def plot_run(run_dir: Path, out: Path | None = None) -> Path:
    """A PNG a person reads at a glance: the loss estimate (the dev loss where the batch's
    loss is secret, DP), the unanimity of the releases, the privacy spent (PACZero: the MI
    charged on the path against the budget; DP: epsilon against its target) and the dev
    metric, all against the steps. Public values only: the release log and metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paczero.runs import RunDir
    from paczero.textfiles import load_yaml, read_text

    run = RunDir(Path(run_dir))
    cfg = load_yaml(read_text(run.config_path), run.config_path)
    records = run.releases()
    steps = [r.step + 1 for r in records]
    dev = [m for m in run.metrics() if m["split"] == "dev"]
    unanimity = says_unanimity(records)
    spent = privacy_curve(run.path, records)
    panels = ["loss"] + (["unanimity"] if unanimity else []) + (["privacy"] if spent else [])
    panels += ["dev"] if dev else []
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(7.5, 1.9 * len(panels) + 1.3), sharex=True, squeeze=False
    )
    axes = list(axes[:, 0])
    ax_of = dict(zip(panels, axes, strict=True))
    ax = ax_of["loss"]
    if records and all(r.loss is not None for r in records):
        losses = [r.loss for r in records]
        window, smooth = running_mean(losses)
        ax.plot(steps, losses, lw=0.8, color="tab:blue", alpha=0.45, label="per step")
        ax.plot(steps, smooth, lw=2, color="tab:blue", label=f"mean of {window}")
        ax.set_ylabel("loss estimate")
    else:
        # A step on secret rows (DP sampling) keeps its loss private: show the public dev loss.
        dev_steps, dev_loss = [m["step"] for m in dev], [m["loss"] for m in dev]
        label = "dev loss (the sampled batch's loss is secret)"
        ax.plot(dev_steps, dev_loss, "o-", color="tab:blue", label=label)
        ax.set_ylabel("dev loss")
    ax.legend(loc="upper right", fontsize=8)
    if unanimity:
        agree = [r.agreement() for r in records]
        running = [sum(agree[: i + 1]) / (i + 1) for i in range(len(agree))]
        ax = ax_of["unanimity"]
        ax.scatter(steps, agree, s=8, color="tab:green", alpha=0.5, label="this step")
        ax.plot(steps, running, lw=2, color="tab:green", label="running fraction")
        ax.set_ylabel("subsets unanimous")
        ax.set_ylim(-0.05, 1.05)
        ax.legend(loc="center right", fontsize=8)
    if spent:
        ax = ax_of["privacy"]
        ax.plot(steps, spent["values"], lw=2, color="tab:purple", label=spent["label"])
        if spent.get("limit") is not None:
            ax.axhline(spent["limit"], ls="--", color="tab:purple", alpha=0.6,
                       label=spent["limit_label"])  # fmt: skip
        ax.set_ylabel(spent["axis"])
        ax.legend(loc="lower right", fontsize=8)
    if dev:
        metric = next(k for k in dev[0] if k not in ("step", "split"))  # the task's first
        ax = ax_of["dev"]
        ax.plot([m["step"] for m in dev], [m[metric] for m in dev], "o-", color="tab:red")
        ax.set_ylabel(f"dev {metric}")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    model = cfg["model"]
    fig.suptitle(
        f"{cfg['mechanism']['name']} on {model['name']} ({model['track']}), "
        f"{cfg['task']['name']}, pool {cfg['data']['num_train']}"
    )
    fig.tight_layout()
    out = Path(out) if out else run.path / "training.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def running_mean(values: list[float]) -> tuple[int, list[float]]:
    """(window, trailing means over a tenth of the series): the smoothed loss curve."""
    window = max(1, len(values) // 10)
    smooth = [
        sum(values[max(0, i - window + 1) : i + 1]) / min(window, i + 1) for i in range(len(values))
    ]
    return window, smooth


def privacy_curve(run_path: Path, records: list[ReleaseRecord]) -> dict[str, Any] | None:
    """The privacy spent after each step, from the public log, and the line the run's
    guarantee keeps it below (``PrivacyReport.curve``: DP's epsilon and its target,
    PACZero's MI charged on the path and the bound). None for a run without a guarantee."""
    if not records:
        return None
    return run_privacy(run_path, None, records)[1].curve(records)


def plot_run_or_warn(run_path: Path) -> None:
    """training.png for every run: public values only (report.plot_run); a plot that
    fails never fails the finished run."""
    import warnings

    try:
        plot_run(run_path)
    except Exception as err:
        warnings.warn(f"paczero: training.png not drawn ({err})", stacklevel=2)
