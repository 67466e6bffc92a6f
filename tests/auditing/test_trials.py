"""`paczero audit --trials`: repeated short runs with fresh secrets, aggregated."""

import pytest

from paczero.auditing import audit_trials
from paczero.errors import UserError

from sizes import small_run

pytestmark = pytest.mark.filterwarnings("ignore:seed.secret is set")


def test_mi_trials_stay_within_the_bound(tmp_path):
    mi = small_run("train.eval_every=0", "train.batch_size=full", "mechanism.name=paczero-mi")
    mi += ["mechanism.budget=0.05", "mechanism.subsets=8", "train.steps=8", "train.lr=0.05"]
    report = audit_trials("smoke", 8, overrides=mi, seeds=list(range(11, 19)))
    data = report.data
    claim = data["claim"]
    assert data["trials"] == 8 and data["checks_ok"]
    for attack in data["attacks"]:
        assert attack["identify_interval"][0] <= claim["identify_bound"]
        assert attack["accuracy_interval"][0] <= claim["posterior_bound"]
        assert attack["epsilon_lower_bound"] <= claim["epsilon"]
    assert data["verdict"] != "violation"
    assert "over 8 runs" in str(report)


def test_trials_refuse_a_seed_count_other_than_the_trial_count_before_training():
    with pytest.raises(UserError, match="1 secret seeds for 2 trials"):
        audit_trials("smoke", 2, seeds=[1])
    with pytest.raises(UserError, match="--trials must be at least 1"):
        audit_trials("smoke", 0)
