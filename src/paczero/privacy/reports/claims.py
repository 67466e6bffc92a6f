"""The claim an audit holds its attack against (``PrivacyReport.claim``), in words."""

from __future__ import annotations

from typing import Any


def claim_words(claim: dict[str, Any] | None, mechanism: str) -> str:
    """The claim an audit states (``PrivacyReport.claim``), in one line."""
    if claim is None:
        return f"Claim: none ({mechanism} is not private)"
    if claim["epsilon_kind"] == "matched":
        return (
            f"Claim: I(S*; releases) <= {claim['mi_bound']:g} nats: membership success <= "
            f"{claim['posterior_bound']:.4f}, matched epsilon {claim['epsilon']:.3g}; naming S* "
            f"among {claim['candidates']} <= {claim['identify_bound']:.3f} "
            f"(Fano: {claim['fano_bound']:.3f})"
        )
    return (
        f"Claim: ({claim['epsilon']:.3g}, {claim['delta']:g})-DP: membership success <= "
        f"{claim['posterior_bound']:.4f}"
    )


def claimed_epsilon_words(claim: dict[str, Any]) -> str:
    """The epsilon a claim holds an empirical epsilon against, named as what it is."""
    if claim["epsilon_kind"] == "matched":
        return f"the matched epsilon {claim['epsilon']:.3g} of I <= {claim['mi_bound']:g} nats"
    return f"the claimed epsilon {claim['epsilon']:.3g}"


def epsilon_kind_word(claim: dict[str, Any]) -> str:
    """``matched`` (a PAC bound's matched epsilon) or ``claimed`` (a DP epsilon)."""
    return "matched" if claim["epsilon_kind"] == "matched" else "claimed"
