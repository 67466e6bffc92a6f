"""The guarantee in words: one report class per privacy family (paczero.privacy.reports),
picked by the family the mechanism recorded, never re-derived from other fields; the words
every family shares (unit, coverage) in paczero.guarantee."""

import re
from pathlib import Path

import pytest

import paczero
from paczero import guarantee
from paczero.mechanisms import REGISTRY, build_mechanism, mechanism_config
from paczero.privacy.reports import (
    DPReport,
    MIBudgetReport,
    NoGuaranteeReport,
    PrivacyReport,
    ZeroLeakReport,
)
from paczero.trainer import train

PAC = {"mechanism": "paczero-mi", "framework": "pac", "mi_bound": 0.3, "budget": 0.3,
       "posterior_bound": 0.87, "matched_epsilon": 1.9, "subsets": 8,
       "spent": {"charged": 0.1, "mi_bound": 0.3},
       "guarantee": MIBudgetReport.GUARANTEE.format(one="example"),
       "unanimity_fraction": 0.25, "release_kinds": {"noisy": 3}, "steps": 3,
       "releases": 3, "secret_source": "os-entropy"}  # fmt: skip
DP = {"mechanism": "dpzero", "framework": "dp", "spent": {"epsilon": 2.0, "delta": 1e-5},
      "budget": {"epsilon": 2.0, "delta": 1e-5}, "posterior_bound": 0.88, "matched_mi": 0.34,
      "neighbouring_relation": "add-or-remove-one; sensitivity C", "accountant": "rdp",
      "noise_multiplier": 1.1,
      "expected_batch": 4, "sample_rate": 0.125,
      "guarantee": DPReport.GUARANTEE.format(one="example"),
      "unanimity_fraction": None,
      "release_kinds": {"dp": 3}, "steps": 3, "releases": 3, "secret_source": "seeded"}  # fmt: skip
NONE = {"mechanism": "mezo", "framework": "none", "guarantee": NoGuaranteeReport.GUARANTEE,
        "unanimity_fraction": None, "release_kinds": {"nonprivate": 3}, "steps": 3,
        "releases": 3, "secret_source": "os-entropy"}  # fmt: skip
KEYS = {"paczero-mi": {"budget": 0.3, "subsets": 8}, "paczero-zpl": {"subsets": 8}}
DP_KEYS = {"epsilon": 2.0, "clip": 1.0, "expected_batch": 4, "accountant": "rdp"}


def test_every_mechanism_declares_a_family_with_a_wording():
    """Each mechanism's report is its family's class, and reads back as itself from JSON."""
    classes = {"pac": (ZeroLeakReport, MIBudgetReport), "dp": (DPReport,)}
    for name, cls in REGISTRY.items():
        keys = KEYS.get(name) or (DP_KEYS if cls.family == "dp" else {})
        keys = {"subsets": 8, **keys} if cls.uses_subsets else keys
        mech = build_mechanism(mechanism_config(name, **keys), pool_size=32, steps=2, directions=1)
        report = mech.privacy_report()
        assert report.framework == cls.family, name
        assert isinstance(report, classes.get(cls.family, (NoGuaranteeReport,))), name
        back = PrivacyReport.from_json(report.to_json())
        assert type(back) is type(report) and back.to_json() == report.to_json(), name
    assert isinstance(PrivacyReport.from_json({"mechanism": "old"}), NoGuaranteeReport)


@pytest.mark.parametrize(
    "privacy, says",
    [(PAC, "I(S*; releases) <= 0.3 nats"), (DP, "differential privacy"), (NONE, "No privacy")],
)
def test_each_family_words_its_own_guarantee(privacy, says):
    report = PrivacyReport.from_json(privacy)
    text, plain = report.describe(), report.plain_words(pool=32)
    assert text.startswith(f"Privacy report ({privacy['mechanism']})")
    assert says in text or says in plain
    rows = dict(report.card_rows())
    assert rows["mechanism"] == f"`{privacy['mechanism']}`" and "guarantee" in rows
    covers = report.covers({"dev": 16, "test": 16})
    assert (covers == "Nothing: there is no guarantee.") == (privacy is NONE)
    assert report.to_json() == privacy  # the JSON is the report, key for key


def test_the_table_headline_is_the_familys_own_figures():
    assert PrivacyReport.from_json(PAC).headline() == (0.3, 1.9)  # the bound, not charges
    assert PrivacyReport.from_json(DP).headline() == (0.34, 2.0)
    assert PrivacyReport.from_json(NONE).headline() == (None, None)
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
    report = PrivacyReport.from_json(result.privacy)
    assert f"neighbouring relation: {stated}" in report.describe()
    assert f"neighbouring relation: {stated}" in str(result)
    # the model card's words and rows
    assert f"under the {relation} relation (sensitivity " in report.plain_words(pool=32)
    assert dict(report.card_rows())["neighbouring relation"] == stated
    assert ("2C = 10" in stated) == (sensitivity == "replace-one")


@pytest.mark.parametrize("privacy", [PAC, {**PAC, "mi_bound": 0.0}, DP])
def test_a_user_level_run_is_worded_in_users_everywhere(privacy):
    """One source (guarantee.unit_words): the report, its guarantee line, the card's plain
    words and coverage name the run's unit, never 'pool example(s)'."""
    data = {"unit": "group", "unit_field": "customer", "pool_units": 6}
    users = PrivacyReport.from_json(privacy).with_run({}, data)
    line = users.guarantee
    texts = [
        users.describe(),
        users.plain_words(pool=6),
        users.covers({"dev": 4, "test": 4, "provenance": "own data"}),
    ]
    for text in texts:
        assert "example" not in text, text
    assert "pool user" in line and "users" in texts[1]
    assert "pool user (the rows sharing data.group_field 'customer')" in texts[2]
    assert users.data["note"] == guarantee.coverage_note(data)
    rows = {"unit": "row", "pool_units": 6}
    assert PrivacyReport.from_json(privacy).guarantee_over(rows) == privacy["guarantee"]
    own = PrivacyReport.from_json({**privacy, "guarantee": "a mechanism's own words"})
    assert own.guarantee_over(data) == "a mechanism's own words"


def test_the_dp_words_follow_the_relation_and_a_user_takes_a():
    """Issue 36 item 7: replace-one is not 'in the pool or not'; 'a user', never 'an user'."""
    users = {"unit": "group", "unit_field": "customer"}
    dp = {
        "framework": "dp",
        "spent": {"epsilon": 2.0, "delta": 1e-5},
        "posterior_bound": 0.7,
        "neighbouring_relation": "replace-one; sensitivity 2C",
        "data": users,
    }
    replace = PrivacyReport.from_json(dp).plain_words(30)
    assert "in the pool or not" not in replace and "replaced by another" in replace
    add = PrivacyReport.from_json({**dp, "neighbouring_relation": "add-or-remove-one"})
    add = add.plain_words(30)
    assert "whether any one user was in the pool or not" in add
    pac = PrivacyReport.from_json({"framework": "pac", "mi_bound": 0.0, "data": users})
    pac = pac.plain_words(30)
    for text in (replace, add, pac):
        assert "an user" not in text
    assert "whether a user was in the training half" in pac


def test_the_docs_do_not_call_the_released_noisy_count_private():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "algorithms.md").read_text()
    section = text.split("### 7.6")[1].split("\n### ")[0]
    assert "noisy count stays" not in section and "noise_std_of_coefficient" in section


def branches_on_a_name_or_family(text: str) -> list[int]:
    """Lines of ``text`` that compare a mechanism (or a name) with a mechanism's name,
    compare a family or framework with a family's name, or read ``.family``."""
    from paczero.mechanisms.base import FAMILIES

    names = set(REGISTRY)
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        code = line.split("  #")[0]
        compared = re.findall(r"""(?:==|!=)\s*["']([\w.-]+)["']""", code)
        compared += re.findall(r"""["']([\w.-]+)["']\s*(?:==|!=)""", code)
        for group in re.findall(r"\bin\s*[(\[{]([^)\]}]*)[)\]}]", code):
            compared += re.findall(r"""["']([\w.-]+)["']""", group)
        family = re.search(r"family|framework", code) is not None
        named = re.search(r"mech|name|method", code) is not None  # not a template "mezo"
        if (
            (named and names.intersection(compared))
            or (family and set(FAMILIES).intersection(compared))
            or re.search(r"\.family\b", code)
        ):
            found.append(n)
    return found


def test_no_module_outside_the_mechanisms_and_the_reports_branches_on_a_name_or_family():
    """The guarantee's words, rows, limit line and claim belong to the report class of the
    run's family: a module that compares a mechanism's name (``if name == "paczero-mi"``)
    or its family to decide what to say is found here."""
    src = Path(paczero.__file__).parent
    reports = src / "privacy" / "reports"  # the report types: a package of them
    found = [
        f"{path.relative_to(src)}:{n}"
        for path in sorted(src.rglob("*.py"))
        if "mechanisms" not in path.relative_to(src).parts and reports not in path.parents
        for n in branches_on_a_name_or_family(path.read_text())
    ]
    assert not found, found
    # the finder sees the branches it is meant to find
    assert branches_on_a_name_or_family('if mech["name"] == "paczero-mi":') == [1]
    assert branches_on_a_name_or_family('x = 1\nif name in ("dpzero", "dpzo"):') == [2]
    assert branches_on_a_name_or_family('if privacy["framework"] == "pac":') == [1]
    assert branches_on_a_name_or_family("tags = TAGS[mechanism.family]") == [1]
    assert branches_on_a_name_or_family('if value == "none":  # a config value') == []
    assert branches_on_a_name_or_family('if cfg.template == "mezo":') == []  # a prompt
