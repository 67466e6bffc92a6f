"""The documented recipe for a new mechanism (docs/algorithms.md 10): one file holding the
class and its config section, plus its entry in ``REGISTRY``. The test follows it on a copy
of the package and checks that the run config, the refusal of foreign keys and the
mechanism itself all work without touching anything else."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import paczero

TOY = '''
"""Halve: half the clipped mean of g (a toy mechanism, without a guarantee)."""

from typing import Literal

import numpy as np
from pydantic import Field

from paczero.mechanisms.base import Mechanism, MechanismSection, Release
from paczero.values import Float


class HalveConfig(MechanismSection):
    name: Literal["halve"] = "halve"
    clip: Float = Field(1.0, gt=0)


class Halve(Mechanism):
    name = "halve"
    Config = HalveConfig

    def release(self, g, ctx):
        clip = self.cfg.clip
        return Release(float(np.clip(g, -clip, clip).mean()) / 2, "nonprivate")
'''

CHECK = """
import numpy as np
from paczero.config import load_config
from paczero.errors import UserError
from paczero.mechanisms import StepContext, build_mechanism, mechanism_class
from paczero.privacy.randomness import RandomStream

cfg = load_config("smoke", ["mechanism.name=halve", "mechanism.clip=0.5"])
try:
    load_config("smoke", ["mechanism.name=halve", "mechanism.subsets=4"])
except UserError as err:
    print("refused:", err)
mech = build_mechanism(cfg.mechanism, pool_size=4, steps=1, directions=1)
pub, sec = RandomStream(0, "public"), RandomStream(1, "secret")
release = mech.release(np.array([4.0, -0.1, 0.1, 0.2]), StepContext(0, 0, np.arange(4), pub, sec))
print("coeff:", release.coeff, release.kind in mechanism_class("halve").kinds)
print("family:", mechanism_class("halve").family, cfg.public_dict()["mechanism"])
"""


def test_a_new_mechanism_is_one_file_and_its_registry_entry(tmp_path):
    package = tmp_path / "paczero"
    shutil.copytree(
        Path(paczero.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    (package / "mechanisms" / "halve.py").write_text(TOY)
    registry = package / "mechanisms" / "__init__.py"
    text = registry.read_text()
    # the registry entry: the import and the class in the REGISTRY tuple
    text = text.replace("\nREGISTRY", "\nfrom paczero.mechanisms.halve import Halve\n\nREGISTRY", 1)
    text = text.replace("        DPAggZO,\n", "        DPAggZO,\n        Halve,\n", 1)
    registry.write_text(text)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHECK)],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "refused: unknown config key 'mechanism.subsets' for mechanism 'halve'" in out
    assert "coeff: 0.0875 True" in out  # (0.5 - 0.1 + 0.1 + 0.2) / 4 / 2: clipped, halved
    assert "family: none {'name': 'halve', 'clip': 0.5}" in out


BUDGETED = '''
"""Spent coin: a toy PAC mechanism under an MI budget B (docs/algorithms.md 10).

Each release is a fair coin from the public stream, independent of S* and of g, so
I(S*; releases) = 0 <= B holds (a loose bound, but a true one); each step is charged B / T,
so the charges climb to the budget. Its report is the family's: PACReport.bound(B, ...)."""

from typing import Literal

from pydantic import Field

from paczero.mechanisms.base import Release
from paczero.mechanisms.subsets import SubsetKeys, SubsetMechanism
from paczero.privacy.reports import PACReport
from paczero.values import Bool, Float


class SpentCoinConfig(SubsetKeys):
    name: Literal["spent-coin"] = "spent-coin"
    budget: Float = Field(0.5, gt=0)
    skip_all_zero: Bool = False  # what SubsetMechanism reads besides SubsetKeys

    def mi_budget(self):
        return self.budget


class SpentCoin(SubsetMechanism):
    name = "spent-coin"
    Config = SpentCoinConfig
    family = "pac"
    kinds = ("coin",)
    private = True
    used = 0.0

    def release(self, g, ctx):
        charge = self.cfg.budget / self.steps
        self.used += charge
        coin = ctx.public.generator("spent-coin", ctx.step, ctx.direction).integers(2)
        return Release(1.0 if coin else -1.0, "coin", charge)

    def spent(self):
        return {"charged": self.used}

    def privacy_report(self):
        return PACReport.bound(self.cfg.budget, charged=self.used, subsets=self.subsets)
'''

RUN = """
import sys
from paczero.auditing.attacks import open_view
from paczero.auditing.one_run import claim_of
from paczero.privacy.reports import claim_words
from paczero.report import privacy_curve
from paczero.trainer import train

sets = ["data.num_train=16", "data.num_dev=8", "data.num_test=8", "model.device=cpu",
        "train.steps=4", "train.eval_every=0", "train.batch_size=full", "mechanism.name=spent-coin",
        "mechanism.budget=0.4", "mechanism.subsets=4", "seed.secret=1"]
result = train("smoke", out=sys.argv[1], overrides=sets, progress=False)
view = open_view(result.run_dir)
curve = privacy_curve(result.run_dir, view.records)
print("plot:", curve["limit"], "|", curve["limit_label"], "|", curve["values"][-1])
print("summary:", [line.strip() for line in str(result).splitlines() if "I(S*" in line])
card = (result.run_dir / "model" / "README.md").read_text()
print("card:", [line for line in card.splitlines() if line.startswith("| guarantee")])
print("card words:", "reveals at most 0.4 nats" in card)
print(claim_words(claim_of(view), "spent-coin"))
"""


def test_a_new_pac_mechanism_with_a_budget_states_its_budget_everywhere(tmp_path):
    """The family's report class words the guarantee: a PAC mechanism with an MI budget,
    added as one file and a registry line, gets its budget (not I = 0) on the training
    plot's limit line, in the run summary, on the model card and in the audit's claim."""
    package = tmp_path / "paczero"
    shutil.copytree(
        Path(paczero.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__")
    )
    (package / "mechanisms" / "spent_coin.py").write_text(BUDGETED)
    registry = package / "mechanisms" / "__init__.py"
    text = registry.read_text()
    text = text.replace(
        "\nREGISTRY", "\nfrom paczero.mechanisms.spent_coin import SpentCoin\n\nREGISTRY", 1
    )
    text = text.replace("        DPAggZO,\n", "        DPAggZO,\n        SpentCoin,\n", 1)
    registry.write_text(text)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RUN), str(tmp_path / "run")],
        env={
            "PYTHONPATH": str(tmp_path),
            "PATH": "/usr/bin:/bin",
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
        },  # fmt: skip
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "plot: 0.4 | budget 0.4 nats = the bound | 0.4" in out  # not "I = 0 (ZPL)"
    assert "I(S*; releases) <= 0.4 nats, the budget" in out
    assert "card: ['| guarantee | I(S*; releases) <= 0.4 nats |']" in out
    assert "card words: True" in out
    assert "Claim: I(S*; releases) <= 0.4 nats: membership success <= 0.9140" in out
