"""The privacy report, the end-of-run summary, and plots of a run directory."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from paczero.config import RunConfig


def privacy_report(
    cfg: RunConfig,
    mechanism,
    kinds: Counter[str],
    unanimous: list[bool],
    secret_source: str,
    steps_run: int,
) -> dict[str, Any]:
    """``result.json["privacy"]``: the run's bookkeeping plus the mechanism's own section
    (its guarantee, budget and cost; ``Mechanism.privacy_report``)."""
    report: dict[str, Any] = {
        "mechanism": cfg.mechanism.name,
        "private": bool(mechanism.private),
        "prior": 0.5,
        "unanimity_fraction": (sum(unanimous) / len(unanimous)) if unanimous else None,
        "release_kinds": dict(sorted(kinds.items())),
        "releases": sum(kinds.values()),
        "steps": steps_run,
        "secret_source": secret_source,
    }
    report.update(mechanism.privacy_report())
    return report


def describe_privacy(privacy: dict[str, Any]) -> str:
    """The report in plain words, from its fields (the framework decides the wording)."""
    lines = [f"Privacy report ({privacy['mechanism']})"]
    framework = privacy.get("framework", "none")
    if framework == "dp":
        lines += _describe_dp(privacy)
    elif framework == "pac":
        lines += _describe_pac(privacy)
    else:
        lines.append(f"  {privacy['guarantee']}")
    if privacy["unanimity_fraction"] is not None:
        lines.append(f"  unanimous releases: {100 * privacy['unanimity_fraction']:.1f}%")
    kinds = ", ".join(f"{k} {v}" for k, v in privacy["release_kinds"].items())
    lines.append(f"  releases: {kinds} over {privacy['steps']} steps")
    return "\n".join(lines)


def _describe_dp(privacy: dict[str, Any]) -> list[str]:
    spent = privacy["spent"]
    return [
        f"  spent: epsilon {spent['epsilon']:.4g}, delta {spent['delta']:g} "
        f"({privacy['accountant']} accountant)",
        f"  neighbouring relation: {privacy['neighbouring_relation']}",
        f"  membership-inference success bound: {privacy['posterior_bound']:.4f} "
        f"(prior 0.5); matched MI: {privacy['matched_mi']:.4g} nats",
        f"  {privacy['guarantee']}",
        f"  secret source: {privacy['secret_source']}",
    ]


def _describe_pac(privacy: dict[str, Any]) -> list[str]:
    bound, charged = privacy["mi_bound"], privacy["spent"]["charged"]
    lines = []
    if bound == 0.0:
        lines.append("  mutual information: I(S*; releases) = 0 nats")
        lines.append(
            "  I = 0: the released updates are independent of which candidate subset was "
            "used, so no attacker does better than the prior 0.5 at telling whether an "
            "example was in it."
        )
    else:
        lines.append(
            f"  mutual information bound: I(S*; releases) <= {bound:g} nats, the budget "
            "(every path's charges add up to at most it, and the MI is their expectation)"
        )
        lines.append(
            f"  charges summed on this run's path: {charged:.4g} nats (depends on the path; "
            "not the mutual information, not a bound)"
        )
    lines.append(
        f"  membership-inference success bound: {privacy['posterior_bound']:.4f} (prior 0.5); "
        f"matched DP epsilon: {privacy['matched_epsilon']:.3g}"
    )
    lines.append(f"  {privacy['guarantee']}")
    lines.append(f"  secret source: {privacy['secret_source']}")
    return lines


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
    lines.append(f"test {metric} (dev-best model): {metrics['test'][metric]:.4f}")
    timing = result["timing"]
    lines.append(
        f"time: {timing['total_s']:.1f} s total, {timing['step_s_median']} s per step (median); "
        f"peak memory {result['memory']['peak_rss_mb']:.0f} MB RSS"
    )
    lines.append(describe_privacy(result["privacy"]))
    if run_dir is not None:
        lines.append(f"run directory: {run_dir}")
    return "\n".join(lines)


def plot_run(run_dir: Path, out: Path | None = None) -> Path:
    """A PNG a person reads at a glance: loss estimate, unanimity, dev metric over the steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import yaml

    from paczero.runs import RunDir

    run = RunDir(Path(run_dir))
    cfg = yaml.safe_load(run.config_path.read_text())
    records = run.releases()
    steps = [r["step"] + 1 for r in records]
    agree = [sum(r["unanimous"]) / max(len(r["unanimous"]), 1) for r in records]
    running = [sum(agree[: i + 1]) / (i + 1) for i in range(len(agree))]
    dev = [m for m in run.metrics() if m["split"] == "dev"]

    fig, axes = plt.subplots(3 if dev else 2, 1, figsize=(7.5, 7 if dev else 5.5), sharex=True)
    ax = axes[0]
    if all("loss" in r for r in records):
        losses = [r["loss"] for r in records]
        window = max(1, len(losses) // 10)
        smooth = [
            sum(losses[max(0, i - window + 1) : i + 1]) / min(window, i + 1)
            for i in range(len(losses))
        ]
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
    ax = axes[1]
    if records and all("epsilon" in r for r in records):  # DP: no subsets, show the spend
        ax.plot(steps, [r["epsilon"] for r in records], lw=2, color="tab:purple")
        ax.set_ylabel("epsilon spent")
    else:
        ax.scatter(steps, agree, s=8, color="tab:green", alpha=0.5, label="this step")
        ax.plot(steps, running, lw=2, color="tab:green", label="running fraction")
        ax.set_ylabel("subsets unanimous")
        ax.set_ylim(-0.05, 1.05)
        ax.legend(loc="center right", fontsize=8)
    if dev:
        metric = "f1" if "f1" in dev[0] else "accuracy"
        ax = axes[2]
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
