"""The mechanism seam's defaults: the checks every mechanism inherits, one release per
direction, no guarantee unless a mechanism states one."""

import numpy as np
import pytest

from paczero.errors import UserError
from paczero.guarantee import GUARANTEE_NONE
from paczero.mechanisms.base import RELEASE_KINDS, Mechanism, Release, StepContext
from paczero.privacy.randomness import RandomStream


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
    assert report["framework"] == "none" and report["guarantee"] == GUARANTEE_NONE
    assert report["budget"] is None and report["spent"] is None
    assert not mech.private and not mech.exhausted and mech.batch(0) is None
    assert mech.spent() == {} and mech.state_dict() == {} and mech.private_state_dict() == {}
