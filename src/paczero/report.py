"""The privacy report, the end-of-run summary, and plots of a run directory."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from paczero.config import RunConfig
from paczero.privacy.bounds import (
    epsilon_to_posterior_bound,
    mi_to_epsilon,
    mi_to_posterior_bound,
    posterior_bound_to_mi,
)

GUARANTEE_PAC = (
    "The bound covers membership of a pool example in the secret subset S* (the half of the "
    "pool the model was trained on) against an attacker who knows the pool, the candidate "
    "subsets and every public release; it is not a guarantee for the pool against the "
    "outside world."
)
GUARANTEE_DP = (
    "(epsilon, delta)-differential privacy for each pool example under the neighbouring "
    "relation stated in the report; the MIA bound is the DP bound at prior 0.5."
)
GUARANTEE_NONE = "No privacy guarantee: this mechanism releases data-dependent values unprotected."


def privacy_report(
    cfg: RunConfig,
    mechanism,
    kinds: Counter[str],
    unanimous: list[bool],
    secret_source: str,
    steps_run: int,
) -> dict[str, Any]:
    """``result.json["privacy"]``: what was spent, what it bounds, how often subsets agreed."""
    releases = sum(kinds.values())
    report: dict[str, Any] = {
        "mechanism": cfg.mechanism.name,
        "private": bool(mechanism.private),
        "budget": None,
        "spent": None,
        "posterior_bound": None,
        "prior": 0.5,
        "matched_epsilon": None,
        "unanimity_fraction": (sum(unanimous) / len(unanimous)) if unanimous else None,
        "release_kinds": dict(sorted(kinds.items())),
        "releases": releases,
        "steps": steps_run,
        "secret_source": secret_source,
        "guarantee": GUARANTEE_PAC if mechanism.private else GUARANTEE_NONE,
    }
    spent = mechanism.spent()
    if mechanism.private and "epsilon" in spent:
        epsilon, delta = float(spent["epsilon"]), float(spent.get("delta", 0.0))
        bound = epsilon_to_posterior_bound(epsilon, delta)
        report.update(
            budget={"epsilon": cfg.mechanism.epsilon, "delta": cfg.mechanism.delta},
            spent={"epsilon": epsilon, "delta": delta},
            posterior_bound=bound,
            matched_mi=posterior_bound_to_mi(bound),
            guarantee=GUARANTEE_DP,
        )
    elif mechanism.private:
        spent_mi = float(spent.get("mi", 0.0))
        report.update(
            budget=cfg.mechanism.budget if cfg.mechanism.name == "paczero-mi" else 0.0,
            spent={"mi": spent_mi},
            posterior_bound=mi_to_posterior_bound(spent_mi),
            matched_epsilon=mi_to_epsilon(spent_mi),
            subsets=cfg.mechanism.subsets,
        )
    report.update(mechanism.report())
    return report


def describe_privacy(privacy: dict[str, Any]) -> str:
    lines = [f"Privacy report ({privacy['mechanism']})"]
    if not privacy["private"]:
        lines.append(f"  {GUARANTEE_NONE}")
    elif "epsilon" in privacy["spent"]:
        spent = privacy["spent"]
        lines.append(f"  spent: epsilon {spent['epsilon']:.4g}, delta {spent['delta']:g}")
        lines.append(
            f"  membership-inference success bound: {privacy['posterior_bound']:.4f} "
            f"(prior 0.5); matched MI: {privacy['matched_mi']:.4g} nats"
        )
        lines.append(f"  {privacy['guarantee']}")
    else:
        mi = privacy["spent"]["mi"]
        budget = privacy["budget"]
        spent = f"{mi:.4g} nats" + (f" of a {budget:g}-nat budget" if budget else "")
        lines.append(f"  mutual information spent: {spent}")
        if mi == 0.0:
            lines.append(
                "  I = 0: the released updates are independent of which candidate subset was "
                "used, so no attacker does better than the prior 0.5 at telling whether an "
                "example was in it."
            )
        bound = privacy["posterior_bound"]
        lines.append(
            f"  membership-inference success bound: {bound:.4f} (prior 0.5); "
            f"matched DP epsilon: {privacy['matched_epsilon']:.3g}"
        )
        lines.append(f"  {privacy['guarantee']}")
        lines.append(f"  secret source: {privacy['secret_source']}")
    if privacy["unanimity_fraction"] is not None:
        lines.append(f"  unanimous releases: {100 * privacy['unanimity_fraction']:.1f}%")
    kinds = ", ".join(f"{k} {v}" for k, v in privacy["release_kinds"].items())
    lines.append(f"  releases: {kinds} over {privacy['steps']} steps")
    return "\n".join(lines)


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
    losses = [r["loss"] if r["loss"] is not None else float("nan") for r in records]
    agree = [sum(r["unanimous"]) / max(len(r["unanimous"]), 1) for r in records]
    running = [sum(agree[: i + 1]) / (i + 1) for i in range(len(agree))]
    window = max(1, len(losses) // 10)
    smooth = [
        sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
        for i in range(len(losses))
    ]
    dev = [m for m in run.metrics() if m["split"] == "dev"]

    fig, axes = plt.subplots(3 if dev else 2, 1, figsize=(7.5, 7 if dev else 5.5), sharex=True)
    ax = axes[0]
    ax.plot(steps, losses, lw=0.8, color="tab:blue", alpha=0.45, label="per step")
    ax.plot(steps, smooth, lw=2, color="tab:blue", label=f"mean of {window}")
    ax.set_ylabel("loss estimate")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
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
