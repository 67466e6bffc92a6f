"""The one replay loop (paczero.replay): training, resume, export and the audit all rebuild
theta through it, and a step whose forward passes are redone ends bit-identical to one that
is replayed without them."""

import ast
from pathlib import Path

import pytest
import torch

import paczero
from paczero.engine.zo import ZOEstimator
from paczero.records import ReleaseRecord
from paczero.replay import replay

SRC = Path(paczero.__file__).parent


def _records(steps: int, directions: int) -> list[ReleaseRecord]:
    return [
        ReleaseRecord(
            step=t,
            lr=0.05,
            seeds=[1000 * t + k for k in range(directions)],
            coeffs=[0.3 * (-1) ** (t + k) for k in range(directions)],
            kinds=["noiseless"] * directions,
            charge=0.0,
            cumulative=0.0,
            unanimous=[True] * directions,
            frac_plus=[None] * directions,
            public=[{}] * directions,
            state={},
        )
        for t in range(steps)
    ]


def _params() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(64, generator=gen), torch.randn(8, 16, generator=gen)]


@pytest.mark.parametrize("restore", ["fused", "exact"])
def test_a_step_redone_with_its_passes_ends_where_a_replayed_one_does(restore):
    records = _records(steps=6, directions=2)
    plain = _params()
    replay(ZOEstimator(plain, 1e-2, restore=restore), records, 2)

    redone = _params()
    estimator = ZOEstimator(redone, 1e-2, restore=restore)
    seen = []

    def losses() -> torch.Tensor:
        return torch.stack([redone[0].sum(), redone[1].square().sum(), redone[0].abs().max()])

    def redo(step, record, seeds, amounts) -> bool:
        seen.append((step, record.step, seeds, amounts))
        if step % 2 == 0:
            return False  # replayed by the loop
        for k, seed in enumerate(seeds):
            estimator.estimate(seed, losses, defer_restore=k == len(seeds) - 1)
        return True

    replay(estimator, records, 2, redo=redo)
    assert all(torch.equal(a, b) for a, b in zip(plain, redone, strict=True))
    assert [s[0] for s in seen] == [r.step for r in records]
    assert seen[1][2:] == ([1000, 1001], [0.05 * -0.3 / 2, 0.05 * 0.3 / 2])
    assert any(not torch.equal(a, b) for a, b in zip(plain, _params(), strict=True))


def test_a_replay_from_a_checkpoint_numbers_its_steps_from_there():
    records = _records(steps=5, directions=1)
    whole = _params()
    replay(ZOEstimator(whole, 1e-2), records, 1)
    part = _params()
    replay(ZOEstimator(part, 1e-2), records[:2], 1)
    steps = []
    replay(ZOEstimator(part, 1e-2), records[2:], 1, start=2, redo=lambda t, *_: steps.append(t))
    assert steps == [2, 3, 4]
    assert all(torch.equal(a, b) for a, b in zip(whole, part, strict=True))


def test_only_the_replay_module_replays_a_logged_step():
    """``ZOEstimator.replay`` is the step's float operations; outside the estimator and the
    optimizer (a rank that receives rank 0's coefficients), only paczero.replay calls it."""
    callers = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            func = node.func if isinstance(node, ast.Call) else None
            if isinstance(func, ast.Attribute) and func.attr == "replay":
                callers.add(path.relative_to(SRC).as_posix())
    assert callers <= {"replay.py", "engine/optim.py"}, callers
    assert "replay.py" in callers
