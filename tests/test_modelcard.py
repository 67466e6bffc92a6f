"""The model card (paczero.modelcard): Hub metadata and the privacy section from public
fields only, the guarantee worded by the run's family."""

import yaml

from paczero.config import load_config
from paczero.modelcard import is_hub_id, metadata, render
from paczero.privacy.reports import DPReport, NoGuaranteeReport, PrivacyReport

DP = {"mechanism": "dpzero", "framework": "dp", "spent": {"epsilon": 2.0, "delta": 1e-5},
      "budget": {"epsilon": 2.0, "delta": 1e-5}, "posterior_bound": 0.88, "matched_mi": 0.34,
      "neighbouring_relation": "add-or-remove-one", "accountant": "rdp", "noise_multiplier": 1.1,
      "expected_batch": 4, "sample_rate": 0.125,
      "guarantee": DPReport.GUARANTEE.format(one="example"), "unanimity_fraction": None,
      "release_kinds": {"dp": 4},
      "steps": 4, "releases": 4, "secret_source": "os-entropy"}  # fmt: skip
DP = PrivacyReport.from_json(DP)
NONE = {"mechanism": "mezo", "framework": "none", "guarantee": NoGuaranteeReport.GUARANTEE,
        "unanimity_fraction": None, "release_kinds": {"nonprivate": 4}, "steps": 4,
        "releases": 4, "secret_source": "os-entropy"}  # fmt: skip
NONE = PrivacyReport.from_json(NONE)
INFO = {"step": 4, "track": "full", "base_model": "tiny-llama",
        "base": {"kind": "seed-built", "id": "tiny-llama", "hub_id": None},
        "release_log": {"sha256": "ab", "records": 4, "prefix_sha256": "cd"}}  # fmt: skip


def test_hub_ids_are_owner_slash_name():
    assert is_hub_id("HuggingFaceTB/SmolLM2-135M") and not is_hub_id("./local/model")
    assert not is_hub_id("tiny-llama") and not is_hub_id(None)


def test_the_card_states_the_familys_guarantee_and_tags():
    cfg = load_config("smoke").public_dict()
    dp = render(INFO, cfg, None, DP)
    header = yaml.safe_load(dp.split("---")[1])
    assert header == metadata(INFO, cfg, DP)
    assert "differential-privacy" in header["tags"] and header["library_name"] == "transformers"
    assert "differential privacy for each of the 256 examples of the private pool" in dp
    assert "no test figures" in dp  # an export of an unfinished run
    plain = render(INFO, cfg, None, NONE)
    assert "No privacy guarantee" in plain and "Nothing: there is no guarantee." in plain
    assert "pac-privacy" not in metadata(INFO, cfg, NONE)["tags"]
