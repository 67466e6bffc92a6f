"""`paczero demo`: a private fine-tune end to end, sized for a laptop CPU.

SmolLM2-135M (LoRA) learns SST-2 sentiment with PACZero-ZPL: the updates carry zero mutual
information about which half of the private pool was used. Before training, the run
chooses its prompt among SST-2's public candidates on the private pool, at I = 0
(``paczero.selection``). The demo prints the chosen prompt and its cost, the zero-shot and
fine-tuned dev accuracy on the same examples, the privacy report in plain words, and draws
the loss estimate and unanimity over the steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paczero.config import load_config
from paczero.report import plot_run
from paczero.runs import default_run_dir

RECIPE = "demo"


def demo_config(
    steps: int | None = None,
    mechanism: str | None = None,
    model: str | None = None,
    pool: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
):
    options = []
    if steps is not None:
        options.append(f"train.steps={steps}")
    if mechanism is not None:
        options.append(f"mechanism.name={mechanism}")
        if mechanism == "paczero-mi":
            options.append("mechanism.budget=0.33")
    if model is not None:
        options.append(f"model.name={model}")
    if pool is not None:
        options.append(f"data.num_train={pool}")
    return load_config(RECIPE, [*options, *overrides])


def run_demo(
    out: str | Path | None = None,
    progress: bool = True,
    **options: Any,
) -> tuple[Any, Path, str]:
    """Train, plot, and return (result, plot path, the closing summary text)."""
    from paczero.trainer import train

    cfg = demo_config(**options)
    out = Path(out) if out is not None else default_run_dir(cfg)
    result = train(cfg, out=out, progress=progress)
    plot = result.run_dir / "training.png"  # every run draws it
    if not plot.exists():
        plot = plot_run(result.run_dir)
    return result, plot, summary(result.data, result.run_dir, plot)


def summary(result: dict[str, Any], run_dir: Path, plot: Path) -> str:
    from paczero.guarantee import describe_privacy
    from paczero.selection import describe

    history = result["metrics"]["dev_history"]
    first, last = history[0], history[-1]
    n_dev = result["metrics"]["splits"]["dev"]
    timing = result["timing"]
    privacy = result["privacy"]
    kind = "private " if privacy["private"] else ""
    selection = result.get("selection")
    template = selection["chosen"] if selection else result["config"]["task"].get("template")
    lines = [
        "",
        f"Dev accuracy on the same {n_dev} SST-2 sentences:",
        f"  zero-shot   {first['accuracy']:.3f}  ({template} template, the one trained)",
        f"  fine-tuned  {last['accuracy']:.3f}  (after {last['step']} {kind}steps)",
    ]
    if selection:  # the prompt was chosen on the pool before training, by the mechanism
        lines.append(f"Prompt: {describe(selection)}.")
    if "withheld" not in timing:  # a DP run's times are secret (docs/algorithms.md 7.6)
        lines.append(
            f"Time: {timing['total_s']:.0f} s in all, {timing['step_s_median']:.2f} s per step"
        )
    lines += ["", describe_privacy(privacy)]
    bound = privacy.get("mi_bound")
    if bound == 0.0:
        lines += [
            "",
            "In plain words: the pool was split at random into candidate halves and one half",
            "was secretly chosen for training. The model's updates are exactly as likely",
            "whichever half was chosen, so nobody (even knowing every pool sentence and every",
            "candidate half) can tell better than a coin flip whether a sentence was in the",
            "training half. It does not hide that the pool as a whole shaped the model.",
        ]
    elif bound:
        lines += [
            "",
            "In plain words: the pool was split at random into candidate halves and one half",
            f"was secretly chosen for training. The updates reveal at most {bound:g} nats about",
            "which half it was (the budget, whatever path the run took), so nobody can tell",
            "whether a sentence was in the training half with probability above "
            f"{privacy['posterior_bound']:.3f}",
            "(a coin flip is 0.5). It does not hide that the pool as a whole shaped the model.",
        ]
    lines += ["", f"Plot: {plot}", f"Run directory: {run_dir}"]
    return "\n".join(lines)
