"""Noise multipliers of every paper DP recipe under PLD (our default) and opacus-rdp (published).

For each recipe whose mechanism is a DP baseline: the multiplier PLD calibrates at the full
target epsilon (the noisy count, if any, composed inside the PLD accountant, as the recipes
did before they switched), the multiplier of the published calibration (accountant
opacus-rdp: Opacus's orders and get_noise_multiplier search, Gaussian part at epsilon minus
the count's epsilon), their ratio, the epsilon opacus-rdp reports for the published noise,
and what PLD says that same noise spends. A second table splits the ratio into its three
factors: the budget split (PLD at epsilon - count epsilon over PLD at the full epsilon), RDP
against PLD (the exact RDP root at Opacus's orders over PLD, same split), and the search
(Opacus's returned sigma over that exact root). Prints markdown (docs/dp-calibration.md):

    .venv/bin/python benchmarks/dp_calibration_table.py
"""

from __future__ import annotations

import time

from scipy.optimize import brentq

from paczero.config import load_config, recipe_names
from paczero.privacy.accounting import calibrate_noise_multiplier, epsilon_spent

DP_NAMES = ("dpzero", "dpzo", "dpaggzo")


def cells() -> list[dict]:
    out = []
    for name in recipe_names():
        cfg = load_config(name)
        mech = cfg.mechanism
        if mech.name not in DP_NAMES:
            continue
        eps = float(mech.epsilon)
        count = mech.count_fraction * eps if mech.denominator == "noisy-count" else 0.0
        out.append(
            {
                "recipe": name,
                "mechanism": mech.name,
                "k": cfg.zo.directions,
                "epsilon": eps,
                "delta": mech.delta,
                "q": mech.expected_batch / cfg.data.num_train,
                "steps": cfg.train.steps,
                "count": count,
                "accountant": mech.accountant,
            }
        )
    return out


def measure(cell: dict) -> dict:
    eps, delta, q, steps, count = (cell[k] for k in ("epsilon", "delta", "q", "steps", "count"))
    kw = {"count_epsilon": count}
    pld_mu = calibrate_noise_multiplier(eps, delta, q, steps, accountant="pld", **kw)
    pub_mu = calibrate_noise_multiplier(eps, delta, q, steps, accountant="opacus-rdp", **kw)
    # The same split as published (Gaussian at eps - count eps, count by basic composition)...
    pld_split = calibrate_noise_multiplier(eps - count, delta, q, steps, accountant="pld")

    def rdp_gap(mu: float) -> float:
        return epsilon_spent(mu, delta, q, steps, accountant="opacus-rdp") - (eps - count)

    # ...and the exact root of RDP at Opacus's orders, without the search's 0.01 tolerance.
    rdp_root = brentq(rdp_gap, 0.9 * pld_split, pub_mu * 1.001, rtol=1e-9)
    return {
        **cell,
        "pld": pld_mu,
        "published": pub_mu,
        "reported": epsilon_spent(pub_mu, delta, q, steps, accountant="opacus-rdp", **kw),
        "pld_of_published": epsilon_spent(pub_mu, delta, q, steps, accountant="pld", **kw),
        "pld_split": pld_split,
        "rdp_root": rdp_root,
    }


def main() -> None:
    started = time.perf_counter()
    rows = [measure(cell) for cell in cells()]
    print(
        "| recipe | mechanism | K | ε | q | T | count ε | μ pld (full ε) "
        "| μ opacus-rdp (published) | ratio | ε reported (opacus-rdp) "
        "| ε of the published μ under PLD |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['recipe']}` | {r['mechanism']} | {r['k']} | {r['epsilon']:g} | {r['q']:g} | "
            f"{r['steps']} | {r['count']:g} | {r['pld']:.2f} | {r['published']:.4g} | "
            f"{r['published'] / r['pld']:.3f} | {r['reported']:.3f} | "
            f"{r['pld_of_published']:.3f} |"
        )
    print()
    print(
        "| recipe | μ pld (full ε) | μ pld (Gaussian at ε − count ε) "
        "| μ RDP at Opacus's orders (exact root) | μ opacus-rdp | split | RDP | search |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['recipe']}` | {r['pld']:.2f} | {r['pld_split']:.2f} | {r['rdp_root']:.2f} | "
            f"{r['published']:.4g} | {r['pld_split'] / r['pld']:.3f} | "
            f"{r['rdp_root'] / r['pld_split']:.3f} | {r['published'] / r['rdp_root']:.3f} |"
        )
    print(f"\n(delta 1e-5 everywhere; {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
