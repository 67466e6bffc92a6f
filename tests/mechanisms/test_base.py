"""The mechanism seam's defaults: the checks every mechanism inherits, one release per
direction, no guarantee unless a mechanism states one."""

import numpy as np
import pytest

from paczero.errors import UserError
from paczero.mechanisms.base import RELEASE_KINDS, Mechanism, Release, StepContext
from paczero.privacy.randomness import RandomStream
from paczero.privacy.reports import NoGuaranteeReport


class Echo(Mechanism):
    """Releases the mean of g, tagged with the direction it was asked for."""

    name = "echo"

    def release(self, g, ctx):
        return Release(float(np.mean(g)), "nonprivate", public={"direction": ctx.direction})


@pytest.mark.parametrize(("pool", "steps", "directions"), [(0, 1, 1), (4, 0, 1), (4, 1, 0)])
def test_a_mechanism_refuses_an_empty_pool_no_steps_or_no_directions(pool, steps, directions):
    with pytest.raises(UserError, match="must be >= 1"):
        Echo(pool_size=pool, steps=steps, directions=directions)


def test_a_step_releases_each_direction_in_order():
    mech = Echo(pool_size=4, steps=1, directions=3)
    assert mech.cfg.name == "echo"  # a section of its own keys, built from its name
    ctx = StepContext(0, 0, np.arange(4), RandomStream(0, "public"), RandomStream(1, "secret"))
    derivatives = np.array([[1.0, 3.0], [-2.0, -4.0], [0.0, 0.5]])
    releases = mech.release_step(derivatives, ctx)
    assert [r.coeff for r in releases] == [2.0, -3.0, 0.25]
    assert [r.public["direction"] for r in releases] == [0, 1, 2]
    assert all(r.kind in RELEASE_KINDS and r.charge == 0.0 for r in releases)


def test_the_defaults_promise_nothing_and_keep_no_state():
    mech = Echo(pool_size=4, steps=2)
    report = mech.privacy_report()
    assert isinstance(report, NoGuaranteeReport) and report.claim() is None
    section = report.to_json()
    assert section["framework"] == "none" and section["guarantee"] == report.GUARANTEE
    assert section["budget"] is None and section["spent"] is None
    assert not mech.private and not mech.exhausted and mech.batch(0) is None
    assert mech.spent() == {} and mech.state_dict() == {} and mech.private_state_dict() == {}


def test_every_mechanism_declares_its_capabilities_on_the_class():
    """What the rest of paczero reads of a mechanism is declared, never probed: the base
    says zeroth-order and replayable, the first-order ones say otherwise, and a replay
    refuses exactly their release kinds."""
    from paczero.mechanisms import REGISTRY, UNREPLAYABLE_KINDS
    from paczero.mechanisms.base import CAPABILITIES

    assert not Echo.first_order and Echo.replayable
    assert Echo.Config(name="echo").derivative_clip() is None
    for cls in REGISTRY.values():
        assert all(isinstance(getattr(cls, c), bool) for c in CAPABILITIES), cls.name
        assert cls.replayable == (not cls.first_order), cls.name
    assert {n for n, c in REGISTRY.items() if c.first_order} == {"dp-sgd", "backprop"}
    assert sorted(UNREPLAYABLE_KINDS) == ["backprop", "dp-sgd"]
    assert REGISTRY["paczero-zpl"].Config(name="paczero-zpl", clip=2.0).derivative_clip() == 2.0
    assert REGISTRY["mezo"].Config(name="mezo").derivative_clip() is None


def test_no_module_probes_a_mechanism_for_a_capability_or_a_key():
    """``getattr(mechanism..., "first_order", False)`` and the like: a capability or key
    that a mechanism might not have is a declared attribute or section method instead."""
    import re
    from pathlib import Path

    import paczero

    src = Path(paczero.__file__).parent
    probe = re.compile(r"getattr\(\s*[\w.()]*mechanism[\w.()]*\s*,")
    found = [
        f"{path.relative_to(src)}:{n}"
        for path in sorted(src.rglob("*.py"))
        if "mechanisms" not in path.relative_to(src).parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if probe.search(line)
    ]
    assert not found, found
    assert probe.search('clip = getattr(cfg.mechanism, "clip", None)')  # the probe sees one
