"""The end-of-run report (paczero.report): the summary lines and the privacy curve from the
public log."""

import json

from paczero.privacy.reports import DPReport, NoGuaranteeReport, PACReport
from paczero.records import ReleaseRecord
from paczero.report import describe_result, privacy_curve, running_mean

RESULT = {
    "metrics": {"metric": "accuracy", "best_step": 4, "dev_best": {"accuracy": 0.75},
                "dev_history": [{"step": 0, "accuracy": 0.5}, {"step": 4, "accuracy": 0.75}],
                "test": {"accuracy": 0.7, "loss": 0.6}},
    "timing": {"total_s": 3.0, "step_s_median": 0.1},
    "memory": {"peak_rss_mb": 400},
    "privacy": {"mechanism": "mezo", "framework": "none", "guarantee": NoGuaranteeReport.GUARANTEE,
                "unanimity_fraction": None, "release_kinds": {"nonprivate": 4}, "steps": 4},
}  # fmt: skip


def record(step, **fields):
    base = {"step": step, "lr": 0.1, "seeds": [step], "coeffs": [1.0], "kinds": ["noisy"],
            "charge": 0.1, "cumulative": 0.1 * (step + 1), "unanimous": [False],
            "frac_plus": [0.5], "public": [{"unanimous": False}], "state": {}}  # fmt: skip
    return ReleaseRecord.from_json({**base, **fields})


def test_the_summary_says_dev_best_test_time_and_the_guarantee(tmp_path):
    text = describe_result(RESULT, tmp_path)
    assert "dev accuracy: 0.5000 at step 0 -> best 0.7500 at step 4" in text
    assert "test accuracy (dev-best model): 0.7000 (loss 0.6000)" in text
    assert "Privacy report (mezo)" in text and NoGuaranteeReport.GUARANTEE in text
    assert text.endswith(f"run directory: {tmp_path}")
    assert "time: 3.0 s total, 0.1 s per step (median); peak memory 400 MB RSS" in text


def test_a_run_that_took_no_step_says_so_not_none():
    """`paczero resume` of a finished log times no step: the line says so."""
    resumed = {**RESULT, "timing": {"total_s": 2.0, "step_s_median": None}}
    text = describe_result(resumed, None)
    assert "time: 2.0 s total, no step taken; peak memory" in text and "None" not in text


def test_the_privacy_curve_is_the_public_logs_and_the_guarantee_its_limit(tmp_path):
    """The plot's line is the run's guarantee, as its report states it (result.json)."""
    records = [record(t) for t in range(3)]
    mi_report = PACReport.bound(0.5, charged=0.3, subsets=8)
    mi = mi_report.curve(records)
    assert mi["values"] == [0.1, 0.2, 0.1 * 3] and mi["limit"] == 0.5
    assert mi["limit_label"] == "budget 0.5 nats = the bound"
    zpl = PACReport.bound(0.0, charged=0.0, subsets=8).curve(records)
    assert zpl["limit"] == 0.0 and zpl["limit_label"] == "I = 0 (ZPL)"
    assert NoGuaranteeReport.section().curve(records) is None
    dp = [record(t, kinds=["dp"], epsilon=0.5 * (t + 1)) for t in range(2)]
    target = DPReport.target(epsilon=1.0, delta=1e-5, match_mi=None)
    eps = DPReport.spending(epsilon=1.0, delta=1e-5, budget=target).curve(dp)
    assert eps["values"] == [0.5, 1.0] and eps["limit"] == 1.0
    (tmp_path / "result.json").write_text(json.dumps({"privacy": mi_report.to_json()}))
    assert privacy_curve(tmp_path, records) == mi  # a run's plot reads its report
    assert running_mean([1.0, 2.0, 3.0]) == (1, [1.0, 2.0, 3.0])
