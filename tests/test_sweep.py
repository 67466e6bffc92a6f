"""Sweeps: spec, runs per cell and seed, resume after a kill, J workers, table and plot."""

import copy
import csv
import fcntl
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from paczero.cli import main
from paczero.errors import UserError
from paczero.studies.folder import prepare
from paczero.studies.scheduler import run_sweep
from paczero.studies.spec import load_spec
from paczero.studies.state import run_state
from paczero.studies.tables import table

from sizes import small_run

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
SMALL = small_run(
    "train.batch_size=full", "train.steps=12", "train.eval_every=4", "train.checkpoint_every=5"
)
ZPL = ["mechanism.name=paczero-zpl", "mechanism.subsets=4"]
REPO = Path(__file__).resolve().parents[1]


def write_spec(folder: Path, **spec) -> Path:
    spec.setdefault("base", "smoke")
    spec.setdefault("set", SMALL)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def quiet_sweep(sweep, **kwargs):
    lines: list[str] = []
    summary = run_sweep(sweep, threads=1, echo=lines.append, **kwargs)
    return summary, lines


def releases(run: Path) -> list[dict]:
    path = run / "releases.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.endswith("}")]


# ---------------------------------------------------------------- the spec


def test_grid_crosses_training_cells_and_eval_cells_stand_alone(tmp_path):
    spec = write_spec(
        tmp_path,
        grid={"train.lr": [0.001, 0.01]},
        cells=[
            {"name": "mezo", "set": ["mechanism.name=mezo"]},
            {"name": "zpl", "set": {"mechanism.name": "paczero-zpl", "mechanism.subsets": 4}},
            {"name": "ref", "kind": "eval", "set": ["task.template=review"], "seeds": [5]},
        ],
        seeds=[0, 1],
        out=str(tmp_path / "from-spec"),
    )
    sweep = load_spec(spec)
    names = sweep.names()
    assert names == ["mezo_lr-0.001", "mezo_lr-0.01", "zpl_lr-0.001", "zpl_lr-0.01", "ref"]
    assert sweep.path == tmp_path / "from-spec"
    assert load_spec(spec, out=tmp_path / "other").path == tmp_path / "other"
    zpl = sweep.cell("zpl_lr-0.01")
    assert zpl.overrides(1)[:2] == ["seed.public=1", "data.seed=1"]
    cfg = zpl.resolved(1)
    assert (cfg.train.lr, cfg.mechanism.name, cfg.mechanism.subsets) == (0.01, "paczero-zpl", 4)
    assert (cfg.seed.public, cfg.data.seed, cfg.seed.secret) == (1, 1, None)
    assert cfg.data.num_train == 32  # the common set
    ref = sweep.cell("ref")
    assert (ref.kind, ref.seeds, ref.splits) == ("eval", [5], ["test"])
    assert ref.resolved(5).task.template == "review"
    assert len(sweep.runs()) == 4 * 2 + 1


def test_a_cell_set_wins_over_the_seed_and_a_spec_without_cells_is_one_cell(tmp_path):
    spec = write_spec(tmp_path, cells=[{"name": "fixed-data", "set": ["data.seed=9"]}])
    cfg = load_spec(spec).cell("fixed-data").resolved(3)
    assert (cfg.seed.public, cfg.data.seed) == (3, 9)
    own = tmp_path / "own.yaml"
    own.write_text(yaml.safe_dump({"model": {"name": "tiny-opt", "track": "full"}}))
    folder = tmp_path / "sub"
    folder.mkdir()
    sweep = load_spec(write_spec(folder, base="../own.yaml", set=["data.source=synthetic"]))
    assert sweep.names() == ["own"]  # the base is read relative to the spec
    assert sweep.cells[0].resolved(0).model.name == "tiny-opt"


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"bse": "smoke"}, "unknown key 'bse' (did you mean 'base'?)"),
        ({"grid": {"train.lr": []}}, "grid 'train.lr' must be a non-empty list"),
        ({"seeds": [0, 0]}, "lists a seed twice"),
        ({"seeds": ["a"]}, "non-negative integers"),
        ({"cells": [{"name": "a", "kind": "test"}]}, "kind must be train or eval"),
        ({"cells": [{"name": "a"}, {"name": "a"}]}, "two cells are named 'a'"),
        ({"cells": [{"name": "a/b"}]}, "cell name 'a/b'"),
        ({"cells": [{"name": "a", "sett": []}]}, "unknown key 'sett' (did you mean 'set'?)"),
        ({"cells": [{"name": "a", "set": ["train.stepz=3"]}]}, "cell 'a' (seed 0): unknown config"),
        ({"cells": [{"name": "a", "kind": "eval", "splits": ["val"]}]}, "splits must be"),
        ({"base": "no-such-recipe"}, "unknown recipe or config file 'no-such-recipe'"),
        ({"set": "train.steps=3"}, "set must be a list of key=value"),
    ],
)
def test_bad_specs_are_refused_with_one_line(tmp_path, spec, needle):
    path = write_spec(tmp_path, **spec)
    with pytest.raises(UserError) as err:
        load_spec(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_spec_without_base_and_a_missing_spec(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text("seeds: [0]\n")
    with pytest.raises(UserError, match="no base config"):
        load_spec(path)
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "sweep spec not found" in capsys.readouterr().err


# ---------------------------------------------------------------- running, table, plot


def test_sweep_runs_every_cell_and_seed_then_skips_them_and_tabulates(tmp_path, capsys):
    cells = [
        {"name": "mezo", "set": ["mechanism.name=mezo", "train.lr=0.01"]},
        {"name": "zpl", "set": [*ZPL, "train.lr=0.01"]},
        {"name": "zero-shot", "kind": "eval", "splits": ["test", "dev"]},
    ]
    spec = write_spec(tmp_path, cells=cells, seeds=[0, 1], out=str(tmp_path / "sweep"))
    sweep = load_spec(spec)
    summary, lines = quiet_sweep(sweep)
    assert not summary.failed and len(summary.done) == 6 and summary.skipped == 0
    assert sum(" start " in x for x in lines) == 6
    done = [x for x in lines if " done " in x]
    assert len(done) == 6 and all("test accuracy" in x and " s)" in x for x in done)
    root = tmp_path / "sweep"
    for cell in ("mezo", "zpl"):
        for seed in (0, 1):
            result = json.loads((root / cell / f"seed-{seed}" / "result.json").read_text())
            assert result["config"]["seed"] == {"public": seed}  # the secret stays unset
            assert result["config"]["data"]["seed"] == seed
            assert result["privacy"]["secret_source"] == "os-entropy"
    assert (root / "zero-shot" / "seed-1" / "eval.json").exists()
    assert json.loads((root / "sweep.json").read_text())["cells"][0]["name"] == "mezo"

    # a rerun skips everything; a changed spec is refused
    summary, lines = quiet_sweep(load_spec(spec))
    assert summary.skipped == 6 and not summary.done and not summary.failed
    assert "6 already finished, 0 to do" in lines[0]
    changed = write_spec(tmp_path, cells=[{"name": "mezo", "set": ["train.lr=0.02"]}])
    with pytest.raises(UserError, match="holds a sweep with other cells"):
        run_sweep(load_spec(changed, out=root), echo=lambda line: None)

    # table: mean and sample std over seeds, from the run files alone (no spec)
    data = json.loads(table(root, "json"))
    rows = {r["cell"]: r for r in data["rows"]}
    tests = [
        json.loads((root / "zpl" / f"seed-{s}" / "result.json").read_text())["metrics"]["test"][
            "accuracy"
        ]
        for s in (0, 1)
    ]
    zpl = rows["zpl"]
    assert zpl["method"] == "paczero-zpl" and zpl["n"] == 2
    assert zpl["test"]["values"] == tests
    assert zpl["test"]["mean"] == pytest.approx(statistics.fmean(tests))
    assert zpl["test"]["std"] == pytest.approx(statistics.stdev(tests))
    assert zpl["mia_bound"]["mean"] == 0.5 and zpl["mi"]["mean"] == 0.0
    assert zpl["epsilon"]["mean"] == 0.0 and zpl["unanimity"]["n"] == 2
    assert rows["mezo"]["mia_bound"]["n"] == 0 and rows["mezo"]["step_s"]["n"] == 2
    ref = rows["zero-shot"]
    assert ref["kind"] == "eval" and ref["method"] == "zero-shot (mezo template)"
    evals = [
        json.loads((root / "zero-shot" / f"seed-{s}" / "eval.json").read_text()) for s in (0, 1)
    ]
    assert ref["test"]["values"] == [e["test"]["accuracy"] for e in evals]
    assert ref["dev_best"]["values"] == [e["dev"]["accuracy"] for e in evals]
    # the zero-shot row is the step-0 dev accuracy of the trained cells (same data, same model)
    history = json.loads((root / "mezo" / "seed-0" / "result.json").read_text())["metrics"]
    assert history["dev_history"][0]["accuracy"] == evals[0]["dev"]["accuracy"]

    assert main(["table", str(root)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("| cell | method | n | test accuracy |")
    assert "| zpl | paczero-zpl | 2 |" in text and "0.5000" in text
    mean, std = statistics.fmean(tests), statistics.stdev(tests)
    assert (f"{mean:.3f} ± {std:.3f}" if std else f"{mean:.3f}") in text
    assert main(["table", str(root), "--format", "csv", "--out", str(tmp_path / "t.csv")]) == 0
    parsed = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert [r["cell"] for r in parsed] == ["mezo", "zpl", "zero-shot"]
    assert float(parsed[1]["test_mean"]) == pytest.approx(mean)
    # --baseline: each cell's test gain over the zero-shot row, paired by seed
    paired = json.loads(table(root, "json", baseline="zero-shot"))
    gains = {r["cell"]: r["gain"]["values"] for r in paired["rows"]}
    assert gains["zpl"] == pytest.approx(
        [t - e["test"]["accuracy"] for t, e in zip(tests, evals, strict=True)]
    )
    assert gains["zero-shot"] == [0.0, 0.0]
    assert main(["table", str(root), "--baseline", "zero-shot"]) == 0
    assert "| test gain (paired) |" in capsys.readouterr().out
    assert main(["table", str(root), "--baseline", "nope"]) == 2
    assert "--baseline 'nope' is not a cell of this sweep" in capsys.readouterr().err

    # plots: the sweep, one run, runs side by side
    assert main(["plot", str(root)]) == 0
    assert (root / "sweep.png").stat().st_size > 10_000
    out = tmp_path / "x.png"
    assert main(["plot", str(root), "--x", "epsilon", "--out", str(out)]) == 0 and out.exists()
    runs = [str(root / "zpl" / "seed-0"), str(root / "mezo" / "seed-1")]
    assert main(["plot", *runs, "--out", str(tmp_path / "runs.png")]) == 0
    assert (tmp_path / "runs.png").stat().st_size > 10_000
    assert main(["plot", runs[0]]) == 0 and (root / "zpl" / "seed-0" / "training.png").exists()
    capsys.readouterr()
    assert main(["plot", str(root / "zero-shot" / "seed-0")]) == 2
    assert "zero-shot evaluation" in capsys.readouterr().err
    assert main(["plot", str(root), runs[0]]) == 2
    assert main(["table", runs[0]]) == 2
    assert "is a run directory (no sweep.json)" in capsys.readouterr().err

    # a spec that adds a cell grows the sweep: only the new cell runs; dropping one is refused
    before = {p: p.stat().st_mtime_ns for p in root.glob("*/seed-*/result.json")}
    grown = [*cells, {"name": "mezo-lr0.02", "set": ["mechanism.name=mezo", "train.lr=0.02"]}]
    summary, lines = quiet_sweep(
        load_spec(write_spec(tmp_path, cells=grown, seeds=[0, 1], out=str(root)))
    )
    assert summary.skipped == 6 and not summary.failed
    assert summary.done == ["mezo-lr0.02/seed-0", "mezo-lr0.02/seed-1"]
    assert {p: p.stat().st_mtime_ns for p in before} == before  # finished runs untouched
    recorded = json.loads((root / "sweep.json").read_text())
    assert [c["name"] for c in recorded["cells"]] == ["mezo", "zpl", "mezo-lr0.02", "zero-shot"]
    assert recorded["created"] and recorded["grown"]
    assert "mezo-lr0.02" in {r["cell"] for r in json.loads(table(root, "json"))["rows"]}
    with pytest.raises(UserError, match="cell 'zpl' is gone"):
        run_sweep(
            load_spec(write_spec(tmp_path, cells=cells[:1], seeds=[0, 1], out=str(root))),
            echo=print,
        )


def test_a_failed_run_is_reported_and_the_sweep_goes_on(tmp_path, capsys):
    spec = write_spec(
        tmp_path,
        cells=[
            {"name": "broken", "set": ["model.name=./no-such-model"]},
            {"name": "fine", "set": ["train.steps=3"]},
        ],
        out=str(tmp_path / "sweep"),
    )
    assert main(["sweep", str(spec), "--threads", "1"]) == 1
    out = capsys.readouterr().out
    assert "FAILED broken/seed-0: model.name './no-such-model': no such file" in out
    assert "done   fine/seed-0: test accuracy" in out
    assert "1 done, 0 already finished, 1 failed (of 2 runs); failed: broken/seed-0" in out
    rows = {r["cell"]: r for r in json.loads(table(tmp_path / "sweep", "json"))["rows"]}
    assert rows["broken"]["n"] == 0 and rows["fine"]["n"] == 1
    assert "| broken | mezo | 0/1 | - |" in table(tmp_path / "sweep")


def test_dry_run_writes_nothing_and_a_locked_sweep_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path, cells=[{"name": "a"}], out=str(tmp_path / "sweep"))
    assert main(["sweep", str(spec), "--dry-run"]) == 0
    assert "a/seed-0: train (base smoke; seed.public=0 data.seed=0" in capsys.readouterr().out
    assert not (tmp_path / "sweep").exists()
    sweep = load_spec(spec)
    (tmp_path / "sweep").mkdir()
    with open(tmp_path / "sweep" / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(UserError, match="in use by another sweep"):
            run_sweep(sweep, echo=lambda line: None)
    assert main(["sweep", str(spec), "--jobs", "0"]) == 2


def test_a_run_killed_before_it_released_anything_starts_again(tmp_path):
    spec = write_spec(tmp_path, cells=[{"name": "a", "set": ["train.steps=3"]}])
    sweep = load_spec(spec, out=tmp_path / "sweep")
    prepare(sweep)
    run = sweep.run_path(sweep.cells[0], 0)
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")  # killed after config.yaml, before the secret
    assert run_state(sweep, sweep.cells[0], 0) == "restart"
    summary, lines = quiet_sweep(sweep)
    assert summary.done == ["a/seed-0"] and "train again" in lines[1]
    assert (run / "result.json").exists()


def test_a_run_killed_while_it_made_its_folder_starts_again(tmp_path):
    spec = write_spec(tmp_path, cells=[{"name": "a", "set": ["train.steps=3"]}])
    sweep = load_spec(spec, out=tmp_path / "sweep")
    prepare(sweep)
    run = sweep.run_path(sweep.cells[0], 0)
    for folder in ("checkpoints", "private"):
        (run / folder).mkdir(parents=True)
    (run / ".lock").write_text("4242\n")  # killed before config.yaml: the kernel freed the lock
    (run / "run.json").write_text("{}\n")
    assert run_state(sweep, sweep.cells[0], 0) == "restart"
    (run / "notes.txt").write_text("mine")
    assert run_state(sweep, sweep.cells[0], 0) == "blocked"
    (run / "notes.txt").unlink()
    summary, _ = quiet_sweep(sweep)
    assert summary.done == ["a/seed-0"] and (run / "result.json").exists()


# ---------------------------------------------------------------- killed sweeps


def launch_sweep(spec: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "paczero", "sweep", str(spec), "--threads", "1", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def wait_for(proc: subprocess.Popen, condition, what: str) -> None:
    deadline = time.monotonic() + 240
    while not condition():
        assert proc.poll() is None, (what, proc.communicate())
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.mark.filterwarnings("ignore:seed.secret is set")
def test_a_killed_sweep_resumes_and_its_runs_equal_uninterrupted_runs(tmp_path):
    """SIGKILL mid-run (the sweep runs in its process); the rerun skips the finished runs and
    resumes the killed one through its write-ahead log, to the same releases."""
    from paczero.trainer import train

    long = ["train.steps=60", "train.eval_every=20", "seed.secret=7"]
    spec = write_spec(
        tmp_path,
        cells=[
            {"name": "zpl", "set": [*ZPL, *long]},
            {"name": "mezo", "set": ["train.steps=5"]},
        ],
        out=str(tmp_path / "sweep"),
    )
    sweep = load_spec(spec)
    killed = sweep.run_path(sweep.cell("zpl"), 0)
    proc = launch_sweep(spec)
    wait_for(proc, lambda: len(releases(killed)) >= 12, "the first run's releases")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "result.json").exists() and len(releases(killed)) < 60
    assert run_state(sweep, sweep.cell("zpl"), 0) == "resume"

    summary, lines = quiet_sweep(load_spec(spec))
    assert not summary.failed and summary.done == ["zpl/seed-0", "mezo/seed-0"]
    assert "(resume after step" in lines[1]
    for cell, seed in sweep.runs():
        assert (sweep.run_path(cell, seed) / "result.json").exists()

    reference = tmp_path / "reference"
    cell = sweep.cell("zpl")
    train(copy.deepcopy(cell.config), out=reference, overrides=cell.overrides(0), progress=False)
    assert releases(killed) == releases(reference)
    ours, theirs = (json.loads((p / "result.json").read_text()) for p in (killed, reference))
    assert ours["metrics"]["test"] == theirs["metrics"]["test"]
    assert ours["metrics"]["dev_history"] == theirs["metrics"]["dev_history"]
    assert ours["training"]["resumed_from_step"] is not None


def test_workers_stop_with_a_killed_sweep_and_a_rerun_finishes_them(tmp_path):
    """--jobs 2: two worker processes; SIGKILL of the sweep sends its workers SIGTERM
    (they finish the step, checkpoint and stop, holding the folder's lock until then)."""
    spec = write_spec(
        tmp_path,
        cells=[{"name": "zpl", "set": [*ZPL, "train.steps=150", "train.eval_every=0"]}],
        seeds=[0, 1],
        out=str(tmp_path / "sweep"),
    )
    sweep = load_spec(spec)
    runs = [sweep.run_path(sweep.cells[0], s) for s in (0, 1)]
    proc = launch_sweep(spec, "--jobs", "2")
    wait_for(proc, lambda: any(len(releases(r)) >= 5 for r in runs), "a worker's releases")
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    lock = os.open(tmp_path / "sweep" / ".lock", os.O_RDWR)
    deadline = time.monotonic() + 120
    while True:  # the workers hold the lock until they stopped
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            assert time.monotonic() < deadline, "the workers did not stop"
            time.sleep(0.05)
    os.close(lock)
    stopped = [r for r in runs if (r / "config.yaml").exists() and not (r / "result.json").exists()]
    assert any(releases(r) for r in stopped), "no run was stopped mid-way"
    for seed, run in enumerate(runs):
        steps = len(releases(run))
        if run not in stopped or steps == 0:
            # still setting up when the signal came (a loaded machine starts the second
            # worker late): nothing released, so the rerun starts or resumes it from step 0
            assert run_state(sweep, sweep.cells[0], seed) in ("train", "restart", "resume")
            continue
        assert (run / "checkpoints" / f"step-{steps:07d}").is_dir()  # a graceful stop
        time.sleep(0.2)
        assert len(releases(run)) == steps  # nothing runs on

    summary, _ = quiet_sweep(load_spec(spec))
    assert not summary.failed
    for run in runs:
        assert len(releases(run)) == 150 and (run / "result.json").exists()
    logs = [(r.parent / f"{r.name}.log") for r in runs]
    assert any(log.exists() for log in logs)


@pytest.mark.parametrize(
    "spec", sorted((REPO / "sweeps").glob("paper-sst2-opt*.yaml")), ids=lambda p: p.stem
)
def test_the_gpu_specs_resolve_to_the_paper_recipes(spec):
    sweep = load_spec(spec)  # every (cell, seed) config validates
    assert all(cell.seeds == [0, 1, 2] for cell in sweep.cells)
    for cell in sweep.cells:
        cfg = cell.resolved(0)
        assert cfg.model.name == "facebook/opt-1.3b" and cfg.task.name == "sst2"
        assert cfg.data.num_train == 1000 and cfg.seed.secret is None
        if cfg.model.track == "lora":  # float16 at eps 1e-3 is mostly rounding (docs/sweeps.md)
            assert (cfg.model.dtype, cfg.zo.eps) == ("float16", 0.01)
        else:
            assert (cfg.model.dtype, cfg.zo.eps) == ("float16", 0.001)
    names = sweep.names()
    if spec.stem.endswith("-ft"):
        assert names == [
            "mezo", "zpl", "mi0.33", "mi0.68", "dpzero-eps2", "dpzero-eps6",
            "dpaggzo-eps2", "dpaggzo-eps6", "zero-shot",
        ]  # fmt: skip
        assert sweep.cell("dpzero-eps6").resolved(0).mechanism.epsilon == 6
    if spec.stem.endswith("-lora"):
        assert names == ["mezo", "zpl", "mi0.33", "mi0.68", "zero-shot"]
        assert sweep.cell("mi0.33").resolved(0).train.steps == 2000  # the paper's T


def test_the_cpu_study_compares_every_method_on_the_same_pool_and_forward_passes():
    sweep = load_spec(REPO / "sweeps" / "paper-table-smollm2.yaml")
    assert sweep.names() == [
        "mezo", "full-mean", "full-sign", "full-sign-lr0.01", "zpl", "mi0.33", "mi0.68",
        "mi0.33-lr0.01", "mi0.68-lr0.01", "dpzero-eps2.01",
        "dpzero-eps6.32", "dpaggzo-eps2.01", "dpaggzo-eps6.32", "random-sign",
        "zero-shot-mezo", "zero-shot-review",
    ]  # fmt: skip
    for cell in sweep.cells:
        assert cell.seeds == [0, 1, 2]
        cfg = cell.resolved(1)
        assert (cfg.model.name, cfg.model.track, cfg.task.name) == ("smollm2-135m", "lora", "sst2")
        assert (cfg.data.num_train, cfg.data.num_dev, cfg.data.seed) == (32, 200, 1)
        if cell.kind == "train":
            assert cfg.task.template == "mezo" and cfg.train.batch_size == "full"
            assert cfg.train.steps * cfg.zo.directions == 40  # the same forward passes
    assert sweep.cell("zero-shot-review").resolved(0).task.template == "review"
    for name, mi in [("mi0.33", 0.33), ("dpzero-eps2.01", 0.33), ("dpaggzo-eps6.32", 0.68)]:
        mechanism = sweep.cell(name).resolved(0).mechanism
        assert mi == getattr(mechanism, "budget", None) or mi == mechanism.match_mi
    for tuning in sorted((REPO / "sweeps").glob("*tune*.yaml")):
        assert load_spec(tuning).cells  # the tuning specs behind its choices resolve too


def test_the_gpu_study_shares_pool_data_and_forward_passes(capsys):
    sweep = load_spec(REPO / "sweeps" / "paper-table-smollm2-gpu.yaml")
    assert sweep.names() == [
        "mezo", "full-mean", "full-sign", "zpl", "mi0.33", "mi0.68", "dpzero-eps2.01",
        "dpzero-eps6.32", "dpaggzo-eps2.01", "dpaggzo-eps6.32", "random-sign", "zpl-review",
        "backprop", "dpsgd-eps2.01", "dpsgd-eps6.32", "zero-shot-mezo", "zero-shot-review",
    ]  # fmt: skip
    first_order = {"backprop", "dpsgd-eps2.01", "dpsgd-eps6.32"}
    for cell in sweep.cells:
        assert cell.seeds == [0, 1, 2]
        cfg = cell.resolved(2)
        model = (cfg.model.name, cfg.model.track, cfg.model.dtype, cfg.task.name)
        dtype = "float32" if cell.name in first_order else "float16"  # backprop needs float32
        assert model == ("smollm2-135m", "full", dtype, "sst2")
        data = (cfg.data.num_train, cfg.data.num_dev, cfg.data.num_test, cfg.data.seed)
        assert data == (1000, 500, 872, 2) and cfg.seed.secret is None
        if cell.name in first_order:  # the same 1000 steps, on minibatches
            assert cfg.train.steps == 1000 and cfg.task.template == "mezo"
        elif cell.kind == "train":
            assert cfg.train.batch_size == "full" and cfg.zo.eps == 0.001
            assert cfg.train.steps * cfg.zo.directions == 1000  # the same forward passes
            template = "review" if cell.name == "zpl-review" else "mezo"
            assert cfg.task.template == template
    assert sweep.cell("zero-shot-review").resolved(0).task.template == "review"
    for name, mi in [("mi0.33", 0.33), ("mi0.68", 0.68), ("dpzero-eps2.01", 0.33),
                     ("dpzero-eps6.32", 0.68), ("dpaggzo-eps2.01", 0.33),
                     ("dpaggzo-eps6.32", 0.68), ("dpsgd-eps2.01", 0.33),
                     ("dpsgd-eps6.32", 0.68)]:  # fmt: skip
        mechanism = sweep.cell(name).resolved(0).mechanism
        assert mi == getattr(mechanism, "budget", None) or mi == mechanism.match_mi
    assert sweep.cell("zpl").resolved(0).mechanism.subsets == 126
    assert sweep.cell("mi0.33").resolved(0).mechanism.subsets == 128
    tune = load_spec(REPO / "sweeps" / "paper-table-smollm2-gpu-tune.yaml")
    assert all(cell.seeds == [0] for cell in tune.cells)  # dev-only tuning, one seed
    methods = {cell.resolved(0).mechanism.name for cell in tune.cells}
    assert {
        "mezo",
        "paczero-zpl",
        "paczero-mi",
        "full-sign",
        "dpzero",
        "backprop",
        "dp-sgd",
    } <= methods
    for spec in ("paper-table-smollm2-gpu.yaml", "paper-table-smollm2-gpu-tune.yaml"):
        assert main(["sweep", str(REPO / "sweeps" / spec), "--dry-run"]) == 0
    assert "dry run: nothing is written" in capsys.readouterr().out


# ---------------------------------------------------------------- threads and progress


def test_the_users_thread_count_is_kept(monkeypatch):
    from paczero.studies.scheduler import default_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads(jobs=2) == 3  # not cores // jobs
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads(jobs=1) == max(1, len(os.sched_getaffinity(0)))


def test_a_running_run_prints_its_progress(tmp_path, monkeypatch):
    import paczero.studies.scheduler

    monkeypatch.setattr(paczero.studies.scheduler, "PROGRESS_EVERY_S", 0.05)
    cells = [
        {"name": "zpl", "set": ZPL},
        {"name": "dp", "set": ["mechanism.name=dpzero", "mechanism.epsilon=2"]
         + ["mechanism.expected_batch=8", "mechanism.accountant=rdp", "mechanism.clip=5"]},
    ]  # fmt: skip
    spec = write_spec(tmp_path, cells=cells, seeds=[0], out=str(tmp_path / "sw"))
    summary, lines = quiet_sweep(load_spec(spec))
    assert not summary.failed
    zpl = [x for x in lines if "zpl/seed-0 running: step" in x]
    assert zpl and all(x.split("step ")[1].split("/")[1].startswith("12 ") for x in zpl)
    dp = [x for x in lines if "dp/seed-0 running" in x]
    assert len(dp) == 1 and not re.search(r"step \d", dp[0])  # its step rate is secret
    assert "time" in dp[0]  # once: a line every interval would count its duration
    done = {x.split("done   ")[1].split("/")[0]: x for x in lines if "done   " in x}
    assert re.search(r"\(\d+\.\d s\)$", done["zpl"])  # public rows: its time is shown
    assert done["dp"].endswith("(time withheld: DP rows are secret)")  # it grows with the sample


def test_the_first_order_rows_share_the_cpu_table_s_pool_and_budget(capsys):
    sweep = load_spec(REPO / "sweeps" / "paper-table-smollm2-firstorder.yaml")
    table_spec = load_spec(REPO / "sweeps" / "paper-table-smollm2.yaml")
    assert sweep.names() == ["backprop", "dpsgd-eps2.01", "dpsgd-eps6.32", "zero-shot-mezo"]
    reference = table_spec.cell("zpl").resolved(1)
    for cell in sweep.cells:
        assert cell.seeds == [0, 1, 2] and cell.kind == ("eval" if "zero" in cell.name else "train")
        cfg = cell.resolved(1)
        assert cfg.model == reference.model and cfg.data == reference.data
        assert (cfg.task.template, cfg.train.steps) == ("mezo", 40)
    for name, mi in [("dpsgd-eps2.01", 0.33), ("dpsgd-eps6.32", 0.68)]:
        mechanism = sweep.cell(name).resolved(0).mechanism
        assert (mechanism.name, mechanism.match_mi) == ("dp-sgd", mi)
    assert (
        main(["sweep", str(REPO / "sweeps" / "paper-table-smollm2-firstorder.yaml"), "--dry-run"])
        == 0
    )
    assert "12 runs (dry run: nothing is written)" in capsys.readouterr().out
    assert sweep.cell("zero-shot-mezo").resolved(0) == table_spec.cell("zero-shot-mezo").resolved(0)
