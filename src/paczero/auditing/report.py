"""The audit's output: the claim, a table, a plain-words verdict and a plot."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from paczero.privacy.reports import claim_words, claimed_epsilon_words, epsilon_kind_word

VERDICT_TEXT = {
    "chance": "the attack did no better than chance",
    "within": "the attack did better than chance, within the bound",
    "violation": "the attack found more than the bound allows: report this",
    "leak": "the attack found a leak; this mechanism claims no privacy",
}


def verdict(claim: dict[str, Any] | None, epsilon_lower_bound: float) -> str:
    if claim is not None and epsilon_lower_bound > claim["epsilon"] * (1 + 1e-9):
        return "violation"
    if epsilon_lower_bound <= 0.0:
        return "chance"
    return "within" if claim is not None else "leak"


def plain_words(data: dict[str, Any]) -> str:
    """One line a user reads: what the attack achieved against what was promised."""
    kind = data["verdict"]
    claim = data["claim"]
    lb = data["epsilon_lower_bound"]
    confidence = f"{100 * data['confidence']:g}%"
    line = VERDICT_TEXT[kind]
    named = [a for a in data["attacks"] if a.get("identified")]
    if kind == "chance" and named:
        m = named[0]["candidates"]
        line = (
            f"the {named[0]['name']} attack named S* among {m} candidates, which a guess does "
            f"1 time in {m} by chance"
        )
        if claim is not None:
            line += f" and the guarantee allows up to {claim['identify_bound']:.3f} of the time"
        line += f": one run cannot tell this from chance (empirical epsilon >= 0 at {confidence})"
    elif kind == "chance":
        line += f" (empirical epsilon >= 0 at {confidence} confidence)"
    elif claim is not None:
        op = ">" if kind == "violation" else "<="
        line += (
            f" (empirical epsilon >= {lb:.3g} at {confidence} confidence {op} "
            f"{claimed_epsilon_words(claim)})"
        )
    else:
        line += f" (empirical epsilon >= {lb:.3g} at {confidence} confidence)"
    return line


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def public_words(data: dict[str, Any]) -> str:
    """The verdict against the claim, and nothing computed from the guesses' success."""
    line = VERDICT_TEXT[data["verdict"]] + f" ({100 * data['confidence']:g}% confidence"
    if data["claim"] is not None:
        line += f"; {claimed_epsilon_words(data['claim'])}"
    return line + ")"


def _head(data: dict[str, Any]) -> list[str]:
    head = (
        f"Audit of {data['run']} ({data['mechanism']}, pool {data['pool']}, {data['steps']} steps"
    )
    head += f", M {data['subsets']})" if data.get("subsets") else ")"
    return [head, claim_words(data["claim"], data["mechanism"])]


def format_report(data: dict[str, Any]) -> str:
    """What the terminal (and a CI log, with --check) shows of one audit: the claim and its
    bounds, the verdict, the public-log checks. The ranks of S*, the counts of correct
    guesses and the empirical epsilon computed from them are functions of S*: with the
    public membership matrix and model they name it, so they stay in the private report."""
    lines = [*_head(data), f"Verdict: {public_words(data)}"]
    lines += _checks_lines(data)
    lines += [f"Note: {note}" for note in data.get("public_notes", [])]
    if data.get("json"):
        lines.append(
            f"Private report (ranks, counts, accuracies, empirical epsilon; they depend on S*, "
            f"do not publish them): {data['json']}"
        )
    if data.get("plot"):
        lines.append(f"Plot (private): {data['plot']}")
    return "\n".join(lines)


def _checks_lines(data: dict[str, Any]) -> list[str]:
    """The attacker's recomputation against the public log: public values only."""
    checks = data.get("checks") or {}
    if not checks:
        return []
    parts = []
    for name, item in checks.items():
        text = f"{name} {item['agree']}/{item['checked']}"
        if "max_diff" in item and item["max_diff"]:
            text += f" (max diff {item['max_diff']:.2g})"
        parts.append(text)
    state = "all agree" if all(i["ok"] for i in checks.values()) else "DISAGREEMENT"
    return [f"Rebuilt from the public log ({state}): " + ", ".join(parts)]


def format_private_report(data: dict[str, Any]) -> str:
    """The whole table of one audit, per-attack ranks and counts included (private)."""
    lines = [*_head(data), ""]
    rows = [("attack", "guesses", "correct", "accuracy [CI]", "S* named (rank)", "epsilon >=")]
    for attack in data["attacks"]:
        name = attack["name"] if attack["name"] != "model" else f"model ({attack['score']})"
        named = "-"
        if "rank" in attack:
            yes = "yes" if attack["identified"] else "no"
            named = f"{yes} ({attack['rank']}/{attack['candidates']})"
        lo, hi = attack["interval"]
        accuracy = f"{_fmt(attack['accuracy'])} [{lo:.2f}, {hi:.2f}]"
        rows.append(
            (
                name,
                str(attack["guesses"]),
                str(attack["correct"]),
                accuracy,
                named,
                _fmt(attack["epsilon_lower_bound"], 3),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    lines.append("")
    lines.append(
        f"Empirical epsilon lower bound: {_fmt(data['epsilon_lower_bound'])} "
        f"({100 * data['confidence']:g}% confidence, all attacks together); "
        + (
            f"{epsilon_kind_word(data['claim'])} epsilon {_fmt(data['claim']['epsilon'])}"
            if data["claim"]
            else "no claim"
        )
    )
    lines += _checks_lines(data)
    lines.append(f"In plain words: {data['summary']}")
    lines += [f"Note: {note}" for note in data.get("notes", [])]
    for key, label in (("json", "JSON"), ("plot", "Plot")):
        if data.get(key):
            lines.append(f"{label}: {data[key]}")
    return "\n".join(lines)


def plot_audit(data: dict[str, Any], out: Path) -> Path:
    """Accuracy of the k most confident guesses against k, with its 95% band, chance and the
    membership bound the claim implies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paczero.auditing.stats import clopper_pearson

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = {"transcript": "tab:green", "model": "tab:blue"}
    for attack in data["attacks"]:
        curve = attack["curve"]
        if not curve:
            continue
        x = [p["guesses"] for p in curve]
        acc = [p["correct"] / p["guesses"] for p in curve]
        band = [clopper_pearson(p["correct"], p["guesses"]) for p in curve]
        colour = colours.get(attack["name"], "tab:gray")
        label = attack["name"] if attack["name"] != "model" else f"model ({attack['score']})"
        ax.plot(x, acc, "-", lw=2, color=colour, label=label)
        ax.fill_between(x, [b[0] for b in band], [b[1] for b in band], color=colour, alpha=0.15)
    ax.axhline(0.5, color="black", lw=1, ls=":", label="chance")
    claim = data["claim"]
    if claim is not None:
        ax.axhline(
            claim["posterior_bound"],
            color="tab:red",
            lw=1.5,
            ls="--",
            label="bound (per example, in expectation)",
        )
    ax.set_xlabel("number of guesses (most confident first)")
    ax.set_ylabel("accuracy of the guesses")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    title = textwrap.wrap(f"{data['mechanism']}: {data['summary']}", 100)
    ax.set_title("\n".join(title), fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def format_trials(data: dict[str, Any]) -> str:
    conf = f"{100 * data['confidence']:g}%"
    lines = [
        f"Audit over {data['trials']} runs of {data.get('target', '?')} with fresh secrets "
        f"({data['mechanism']}, pool {data['pool']}, {data['steps']} steps)",
        claim_words(data["claim"], data["mechanism"]),
        "",
    ]
    for a in data["attacks"]:
        name = a["name"] if a["name"] != "model" else f"model ({a['score']})"
        if "identify_rate" in a:
            lo, hi = a["identify_interval"]
            bound = f", bound {a['identify_bound']:.3f}" if a["identify_bound"] is not None else ""
            lines.append(
                f"  {name}: named S* in {a['identified']}/{data['trials']} runs = "
                f"{a['identify_rate']:.3f} [{lo:.3f}, {hi:.3f}] ({conf}; chance "
                f"{a['chance']:.3f}{bound})"
            )
            lo, hi = a["accuracy_interval"]
            bound = f", bound {a['accuracy_bound']:.4f}" if a["accuracy_bound"] is not None else ""
            lines.append(
                f"  {' ' * len(name)}  membership accuracy {a['accuracy']:.3f} "
                f"[{lo:.3f}, {hi:.3f}] ({conf}; chance 0.5{bound})"
            )
        else:
            lo, hi = a["accuracy_interval"]
            bound = f", bound {a['accuracy_bound']:.4f}" if a["accuracy_bound"] is not None else ""
            lines.append(
                f"  {name}: {a['correct']}/{a['guesses']} canary guesses right = "
                f"{a['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] ({conf}; chance 0.5{bound})"
            )
        bound = f"  {' ' * len(name)}  empirical epsilon >= {a['epsilon_lower_bound']:.3g}"
        if a.get("mi_lower_bound"):
            bound += f" (I(S*; output) >= {a['mi_lower_bound']:.3g} nats)"
        lines.append(bound)
    if not data["checks_ok"]:
        lines.append("Some trial's recomputation disagreed with its release log.")
    lines.append(f"In plain words: {data['summary']}")
    for key, label in (("json", "JSON"), ("plot", "Plot")):
        if data.get(key):
            lines.append(f"{label}: {data[key]}")
    return "\n".join(lines)
