"""DP accounting off the step: the same DPZero run under the pld and rdp accountants.

Each accountant runs twice, interleaved; the ratio compares the smaller of each pair's
median step times.

A tiny random Llama (recipe ``smoke``, offline) trains DPZero for T steps; the step times
of the two accountants should match (the epsilon of each step comes from a schedule filled
in the background from the start), and the set-up (calibration) is reported beside them.

    python benchmarks/dp_accounting_step.py --steps 100 --json dp-accounting-step.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path

from paczero.trainer import train


def run(accountant: str, steps: int, out: Path) -> dict:
    overrides = [
        "mechanism.name=dpzero",
        "mechanism.epsilon=2",
        "mechanism.clip=5",
        "mechanism.expected_batch=32",
        f"mechanism.accountant={accountant}",
        f"train.steps={steps}",
        "train.eval_every=0",
        "train.eval_at_start=false",
        "data.num_dev=16",
        "data.num_test=16",
        "model.device=cpu",
        "seed.secret=1",  # the same Poisson samples under both accountants
    ]
    result = train("smoke", out=out / accountant, overrides=overrides, progress=False)
    timing, privacy = result.data["timing"], result.data["privacy"]
    return {
        "accountant": accountant,
        "steps": steps,
        "step_s_median": timing["step_s_median"],
        "train_s": timing["train_s"],
        "mechanism_setup_s": timing["mechanism_setup_s"],
        "epsilon_spent": privacy["spent"]["epsilon"],
        "noise_multiplier": privacy["noise_multiplier"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            run(name, args.steps, Path(tmp) / str(i))
            for i, name in enumerate(("rdp", "pld", "rdp", "pld"))
        ]
    # two runs of each, interleaved, so that a change of load hits both accountants
    median = {
        name: min(r["step_s_median"] for r in rows if r["accountant"] == name)
        for name in ("rdp", "pld")
    }
    summary = {"rows": rows, "pld_over_rdp_step": median["pld"] / median["rdp"]}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
