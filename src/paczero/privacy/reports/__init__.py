"""The privacy report, typed: one class per family of guarantee, and everything said about it.

``Mechanism.privacy_report`` returns one of these; ``result.json["privacy"]`` is its JSON
(``to_json``) and every reader gets it back with ``PrivacyReport.from_json`` (the class is
chosen by the stored ``framework`` and, for PAC, by whether the bound is 0). The report owns
every statement of what the run's guarantee is: the terminal report (``describe``), the
model card's plain words, coverage, rows and tags, the demo's summary, the figures a table
compares (``headline``), the training plot's limit line (``curve``) and the claim an audit
holds the attack against (``claim``). Nothing outside ``paczero.mechanisms`` and this package
branches on a mechanism's name or family.

The four families: ``ZeroLeakReport`` (PAC, I(S*; releases) = 0), ``MIBudgetReport`` (PAC,
I(S*; releases) <= B nats), ``DPReport`` ((epsilon, delta)-DP) and ``NoGuaranteeReport``.
A mechanism's own entries beyond its family's (PACZero-MI's allocation, DP-SGD's frozen
layers) are kept as extra fields. The JSON keeps the keys in the order they were given, so
that the bytes of result.json do not depend on this module's field order.

``base`` holds ``PrivacyReport`` and ``NoGuaranteeReport``, ``pac`` the PACZero families,
``dp`` the DP one, ``claims`` the audit's claim in words; ``FAMILIES`` (filled here) is what
``PrivacyReport.from_json`` reads a stored report as.
"""

from paczero.privacy.reports.base import FAMILIES, NoGuaranteeReport, PrivacyReport
from paczero.privacy.reports.claims import (
    claim_words,
    claimed_epsilon_words,
    epsilon_kind_word,
)
from paczero.privacy.reports.dp import DPReport
from paczero.privacy.reports.pac import MIBudgetReport, PACReport, ZeroLeakReport

FAMILIES.update(
    {
        "pac-zero": ZeroLeakReport,
        "pac-mi": MIBudgetReport,
        "dp": DPReport,
        "none": NoGuaranteeReport,
    }
)

__all__ = [
    "DPReport",
    "MIBudgetReport",
    "NoGuaranteeReport",
    "PACReport",
    "PrivacyReport",
    "ZeroLeakReport",
    "claim_words",
    "claimed_epsilon_words",
    "epsilon_kind_word",
]
