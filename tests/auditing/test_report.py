"""The audit's claims and verdicts, and the words a user reads."""

import pytest

from paczero.auditing.report import VERDICT_TEXT, plain_words, public_words, verdict
from paczero.privacy.reports import DPReport, PACReport, claim_words


def pac_claim(mi, subsets):
    return PACReport.bound(mi, charged=0.0, subsets=subsets).claim()


def dp_claim(epsilon, delta):
    budget = DPReport.target(epsilon=epsilon, delta=delta, match_mi=None)
    return DPReport.spending(epsilon=epsilon, delta=delta, budget=budget).claim()


def test_a_pac_claim_weakens_with_the_budget_and_bounds_naming_s_star():
    small, large = pac_claim(0.05, 16), pac_claim(0.5, 16)
    assert small["framework"] == "pac" and small["candidates"] == 16
    assert 0.5 < small["posterior_bound"] < large["posterior_bound"] < 1
    assert 0 < small["epsilon"] < large["epsilon"]
    assert 1 / 16 < small["identify_bound"] <= small["fano_bound"]


def test_the_verdict_against_a_claim():
    claim = dp_claim(1.0, 1e-5)
    assert verdict(claim, 0.0) == "chance"
    assert verdict(claim, 0.7) == "within" and verdict(claim, 1.0) == "within"
    assert verdict(claim, 1.2) == "violation"
    assert verdict(None, 0.0) == "chance" and verdict(None, 0.3) == "leak"


def test_the_claim_and_the_verdict_in_words():
    claim = dp_claim(2.0, 1e-5)
    assert claim_words(None, "secret-mean") == "Claim: none (secret-mean is not private)"
    assert claim_words(claim, "dpzero").startswith("Claim: (2, 1e-05)-DP")
    assert "nats" in claim_words(pac_claim(0.1, 8), "paczero-mi")
    data = {"verdict": "within", "claim": claim, "epsilon_lower_bound": 0.81234}
    data |= {"confidence": 0.95, "attacks": [{"name": "model", "identified": False}]}
    line = plain_words(data)
    assert line.startswith(VERDICT_TEXT["within"]) and "0.812" in line and "<= the claimed" in line
    public = public_words(data)  # the verdict and the claim, not the guesses' success
    assert "95% confidence" in public and "0.812" not in public


@pytest.mark.parametrize("candidates", [4, 8])
def test_s_star_named_among_few_candidates_reads_as_chance(candidates):
    attack = {"name": "transcript", "identified": True, "candidates": candidates}
    data = {"verdict": "chance", "claim": None, "epsilon_lower_bound": 0.0}
    line = plain_words(data | {"confidence": 0.95, "attacks": [attack]})
    assert f"1 time in {candidates} by chance" in line and "cannot tell this from chance" in line
