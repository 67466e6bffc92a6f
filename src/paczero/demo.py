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


# The keys the demo sets for a mechanism that needs more than its name (a budget).
DEMO_KEYS = {"paczero-mi": ["mechanism.budget=0.33"]}


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
        options += DEMO_KEYS.get(mechanism, [])
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
    from paczero.privacy.reports import PrivacyReport
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
    report = PrivacyReport.from_json(privacy)
    lines += ["", report.describe()]
    words = report.demo_words()
    lines += ["", *words] if words else []
    lines += ["", f"Plot: {plot}", f"Run directory: {run_dir}"]
    return "\n".join(lines)
