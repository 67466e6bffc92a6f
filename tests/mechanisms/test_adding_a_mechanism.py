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
