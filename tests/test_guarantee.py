"""The guarantee in words (paczero.guarantee): one wording per privacy family, picked by the
family the mechanism recorded, never re-derived from other fields."""

import pytest

from paczero import guarantee
from paczero.mechanisms import REGISTRY, family_of
from paczero.trainer import train

PAC = {"mechanism": "paczero-mi", "framework": "pac", "mi_bound": 0.3, "budget": 0.3,
       "posterior_bound": 0.87, "matched_epsilon": 1.9, "subsets": 8,
       "spent": {"charged": 0.1, "mi_bound": 0.3}, "guarantee": guarantee.GUARANTEE_PAC,
       "unanimity_fraction": 0.25, "release_kinds": {"noisy": 3}, "steps": 3,
       "releases": 3, "secret_source": "os-entropy"}  # fmt: skip
DP = {"mechanism": "dpzero", "framework": "dp", "spent": {"epsilon": 2.0, "delta": 1e-5},
      "budget": {"epsilon": 2.0, "delta": 1e-5}, "posterior_bound": 0.88, "matched_mi": 0.34,
      "neighbouring_relation": "add-or-remove-one; sensitivity C", "accountant": "rdp",
      "noise_multiplier": 1.1,
      "expected_batch": 4, "sample_rate": 0.125, "guarantee": guarantee.GUARANTEE_DP,
      "unanimity_fraction": None,
      "release_kinds": {"dp": 3}, "steps": 3, "releases": 3, "secret_source": "seeded"}  # fmt: skip
NONE = {"mechanism": "mezo", "framework": "none", "guarantee": guarantee.GUARANTEE_NONE,
        "unanimity_fraction": None, "release_kinds": {"nonprivate": 3}, "steps": 3,
        "releases": 3, "secret_source": "os-entropy"}  # fmt: skip


def test_every_mechanism_declares_a_family_with_a_wording():
    for name, cls in REGISTRY.items():
        assert family_of(name) == cls.family in ("pac", "dp", "none"), name
        assert cls.family in guarantee.TAGS
    assert family_of("not-a-mechanism") == "none"


@pytest.mark.parametrize(
    "privacy, says",
    [(PAC, "I(S*; releases) <= 0.3 nats"), (DP, "differential privacy"), (NONE, "No privacy")],
)
def test_each_family_words_its_own_guarantee(privacy, says):
    report = guarantee.describe_privacy(privacy)
    plain = guarantee.plain_words(privacy, pool=32)
    assert report.startswith(f"Privacy report ({privacy['mechanism']})")
    assert says in report or says in plain
    rows = dict(guarantee.privacy_rows(privacy))
    assert rows["mechanism"] == f"`{privacy['mechanism']}`" and "guarantee" in rows
    covers = guarantee.covers(privacy, {"dev": 16, "test": 16})
    assert (covers == "Nothing: there is no guarantee.") == (privacy is NONE)


def test_the_table_headline_is_the_familys_own_figures():
    assert guarantee.headline(PAC) == (0.3, 1.9)  # the bound, not the path's charges
    assert guarantee.headline(DP) == (0.34, 2.0)
    assert guarantee.headline(NONE) == (None, None)
    assert guarantee.fmt(None) is None and guarantee.fmt(0.123456) == "0.1235"


@pytest.mark.parametrize(
    "sensitivity, relation",
    [("add-remove", "add-or-remove-one"), ("replace-one", "replace-one")],
)
def test_dp_text_report_states_the_neighbouring_relation(
    tmp_path, small_run, sensitivity, relation
):
    sets = [*small_run, "train.steps=4", "mechanism.name=dpzero", "mechanism.clip=5"]
    sets += ["mechanism.expected_batch=3", "mechanism.epsilon=2", "mechanism.accountant=rdp"]
    sets += [f"mechanism.sensitivity={sensitivity}"]
    result = train("smoke", out=tmp_path / "dp", overrides=sets, progress=False)
    stated = result.privacy["neighbouring_relation"]
    assert stated.startswith(f"{relation}; sensitivity ")
    text = guarantee.describe_privacy(result.privacy)
    assert f"neighbouring relation: {stated}" in text
    assert f"neighbouring relation: {stated}" in str(result)
    # the model card's words and rows
    assert f"under the {relation} relation (sensitivity " in guarantee.plain_words(
        result.privacy, pool=32
    )
    assert dict(guarantee.privacy_rows(result.privacy))["neighbouring relation"] == stated
    assert ("2C = 10" in stated) == (sensitivity == "replace-one")


@pytest.mark.parametrize("privacy", [PAC, {**PAC, "mi_bound": 0.0}, DP])
def test_a_user_level_run_is_worded_in_users_everywhere(privacy):
    """One source (guarantee.unit_words): the report, its guarantee line, the card's plain
    words and coverage name the run's unit, never 'pool example(s)'."""
    data = {"unit": "group", "unit_field": "customer", "pool_units": 6}
    data["note"] = guarantee.coverage_note(data)
    line = guarantee.guarantee_line(privacy["guarantee"], data)
    users = {**privacy, "data": data, "guarantee": line}
    texts = [
        guarantee.describe_privacy(users),
        guarantee.plain_words(users, pool=6),
        guarantee.covers(users, {"dev": 4, "test": 4, "provenance": "own data"}),
    ]
    for text in texts:
        assert "example" not in text, text
    assert "pool user" in line and "users" in texts[1]
    assert "pool user (the rows sharing data.group_field 'customer')" in texts[2]
    rows = {"unit": "row", "pool_units": 6}
    assert guarantee.guarantee_line(privacy["guarantee"], rows) == privacy["guarantee"]
    assert guarantee.guarantee_line("a mechanism's own words", data) == "a mechanism's own words"


def test_the_dp_words_follow_the_relation_and_a_user_takes_a():
    """Issue 36 item 7: replace-one is not 'in the pool or not'; 'a user', never 'an user'."""
    from paczero.guarantee import plain_words

    users = {"unit": "group", "unit_field": "customer"}
    dp = {
        "framework": "dp",
        "spent": {"epsilon": 2.0, "delta": 1e-5},
        "posterior_bound": 0.7,
        "neighbouring_relation": "replace-one; sensitivity 2C",
        "data": users,
    }
    replace = plain_words(dp, 30)
    assert "in the pool or not" not in replace and "replaced by another" in replace
    add = plain_words({**dp, "neighbouring_relation": "add-or-remove-one"}, 30)
    assert "whether any one user was in the pool or not" in add
    pac = plain_words({"framework": "pac", "mi_bound": 0.0, "data": users}, 30)
    for text in (replace, add, pac):
        assert "an user" not in text
    assert "whether a user was in the training half" in pac


def test_the_docs_do_not_call_the_released_noisy_count_private():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "algorithms.md").read_text()
    section = text.split("### 7.6")[1].split("\n### ")[0]
    assert "noisy count stays" not in section and "noise_std_of_coefficient" in section
