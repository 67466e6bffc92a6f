"""train.report_to: TensorBoard event files with public values only (issue #17 item 3)."""

import json

import pytest

from paczero import tracking
from paczero.cli import main
from paczero.config import load_config
from paczero.records import ReleaseRecord
from paczero.trainer import train

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from sizes import small_run  # noqa: E402

SMALL = small_run("train.steps=6")
SMALL += ["train.eval_every=3", "train.report_to=[tensorboard]"]
ZPL = ["mechanism.name=paczero-zpl", "mechanism.subsets=4", "train.batch_size=full"]
MI = ["mechanism.name=paczero-mi", "mechanism.budget=0.3", "mechanism.subsets=8"]
MI += ["train.batch_size=full"]
DP = ["mechanism.name=dpzero", "mechanism.clip=5", "mechanism.expected_batch=3"]
DP += ["mechanism.epsilon=2", "mechanism.accountant=rdp"]


def _scalars(run_dir):
    events = EventAccumulator(str(run_dir / tracking.TENSORBOARD_DIR))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_tensorboard_events_hold_the_public_per_step_figures(tmp_path):
    result = train("smoke", out=tmp_path / "mi", overrides=[*SMALL, *MI], progress=False)
    run = result.run_dir
    scalars = _scalars(run)
    records = [json.loads(x) for x in (run / "releases.jsonl").open()]
    assert [s for s, _ in scalars["train/loss"]] == list(range(1, 7))
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([r["loss"] for r in records])
    assert [v for _, v in scalars["privacy/mi_charged"]] == pytest.approx(
        [r["cumulative"] for r in records]
    )
    unanimous = [float(r["public"][0]["unanimous"]) for r in records]
    assert [v for _, v in scalars["privacy/unanimous"]] == pytest.approx(unanimous)
    running = [sum(unanimous[: i + 1]) / (i + 1) for i in range(6)]
    assert [v for _, v in scalars["privacy/unanimity"]] == pytest.approx(running)
    dev = [m for m in map(json.loads, (run / "metrics.jsonl").open()) if m["split"] == "dev"]
    assert [s for s, _ in scalars["dev/accuracy"]] == [m["step"] for m in dev]
    assert [v for _, v in scalars["dev/accuracy"]] == pytest.approx([m["accuracy"] for m in dev])
    assert scalars["test/accuracy"][0][1] == pytest.approx(result.test["accuracy"])
    assert scalars["summary/mi_bound"][0][1] == pytest.approx(0.3)  # the budget, the bound
    assert scalars["summary/posterior_bound"][0][1] == pytest.approx(
        result.privacy["posterior_bound"]
    )


@pytest.mark.filterwarnings("ignore:seed.secret")
def test_tracking_is_secret_independent_and_dp_steps_log_no_loss(tmp_path):
    """ZPL: different secrets, the same tracked values. DP: the sampled batch's loss is
    secret, so no train/loss at all; epsilon spent is logged."""
    a = train("smoke", out=tmp_path / "a", overrides=[*SMALL, *ZPL, "seed.secret=1"])
    b = train("smoke", out=tmp_path / "b", overrides=[*SMALL, *ZPL, "seed.secret=2"])
    assert _scalars(a.run_dir) == _scalars(b.run_dir)

    dp = train("smoke", out=tmp_path / "dp", overrides=[*SMALL, *DP, "seed.secret=3"])
    scalars = _scalars(dp.run_dir)
    assert "train/loss" not in scalars
    assert not any("unanimi" in tag or "charge" in tag for tag in scalars)
    records = [json.loads(x) for x in (dp.run_dir / "releases.jsonl").open()]
    assert [v for _, v in scalars["privacy/epsilon"]] == pytest.approx(
        [r["epsilon"] for r in records]
    )
    assert "dev/loss" in scalars and "summary/spent_epsilon" in scalars


def test_only_rank_zero_tracks_and_no_report_to_tracks_nothing(tmp_path):
    cfg = load_config("smoke", [*SMALL])
    with tracking.open_tracker(cfg, tmp_path, "id", main=False) as tracker:
        assert tracker is None
    plain = load_config("smoke", SMALL[:-1])
    assert plain.train.report_to == []
    with tracking.open_tracker(plain, tmp_path, "id", main=True) as tracker:
        assert tracker is None
    assert not (tmp_path / tracking.TENSORBOARD_DIR).exists()
    run = train("smoke", out=tmp_path / "run", overrides=SMALL[:-1], progress=False).run_dir
    assert not (run / tracking.TENSORBOARD_DIR).exists()


def test_a_backend_that_is_not_installed_is_one_line(tmp_path, monkeypatch, capsys):
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(
        tracking.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "wandb" else real(name, *a),
    )
    argv = ["train", "smoke", "--out", str(tmp_path / "run"), "--set", "train.report_to=[wandb]"]
    assert main([*argv, "--set", "train.steps=2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "train.report_to names wandb" in err and "pip install wandb" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["train", "smoke", "--set", "train.report_to=[mlflow]"]) == 2
    assert "report_to" in capsys.readouterr().err


def record(**fields):
    base = {"step": 4, "lr": 0.1, "seeds": [1, 2], "coeffs": [1.0, -1.0], "kinds": ["coin"] * 2,
            "charge": 0.0, "cumulative": 0.0, "unanimous": [False, False],
            "frac_plus": [None, None], "public": [{}, {}], "state": {}}  # fmt: skip
    return ReleaseRecord.from_json({**base, **fields})


def test_step_values_read_only_public_record_fields():
    publics = [{"unanimous": True}, {"unanimous": False}]
    pac = record(charge=0.01, cumulative=0.02, public=publics, loss=0.5)
    assert tracking.step_values(pac, private=True) == {
        "train/lr": 0.1,
        "train/coeff": 0.0,
        "train/loss": 0.5,
        "privacy/charge": 0.01,
        "privacy/mi_charged": 0.02,
        "privacy/unanimous": 0.5,
    }
    dp = record(step=0, coeffs=[0.3], kinds=["dp"], epsilon=0.2, public=[{}])
    assert tracking.step_values(dp, private=True) == {
        "train/lr": 0.1,
        "train/coeff": 0.3,
        "privacy/epsilon": 0.2,
    }


@pytest.mark.parametrize("backend", ["wandb", "trackio"])
def test_wandb_and_trackio_get_the_same_public_figures(tmp_path, monkeypatch, backend):
    """Through their own API (init, log with a step, finish): faked, as neither is installed."""
    import sys
    import types

    calls = {"log": []}
    fake = types.ModuleType(backend)
    fake.init = lambda **kwargs: calls.setdefault("init", kwargs)
    fake.log = lambda values, step=None: calls["log"].append((step, dict(values)))
    fake.finish = lambda: calls.setdefault("finish", True)
    monkeypatch.setitem(sys.modules, backend, fake)
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(
        tracking.importlib.util,
        "find_spec",
        lambda name, *a: object() if name == backend else real(name, *a),
    )
    sets = [*SMALL[:-1], f"train.report_to=[{backend}]", *MI]
    result = train("smoke", out=tmp_path / "run", overrides=sets, progress=False)
    assert calls["finish"] is True and calls["init"]["config"] == result.data["config"]
    assert calls["init"]["project"] == "paczero"
    losses = [values["train/loss"] for _, values in calls["log"] if "train/loss" in values]
    records = [json.loads(x) for x in (result.run_dir / "releases.jsonl").open()]
    assert losses == pytest.approx([r["loss"] for r in records])
    assert [s for s, v in calls["log"] if "privacy/mi_charged" in v] == list(range(1, 7))
    assert not (result.run_dir / tracking.TENSORBOARD_DIR).exists()
