"""Every public byte is a function of public inputs and of what the mechanism released.

docs/design.md, privacy invariants 6-9: DP runs publish nothing computed from their secret
Poisson sample; ZOOptimizer takes its rows from the mechanism; the PACZero-MI report states
the budget as the guarantee; the secret seed stays in private/; the public and private
release logs stay a consistent pair across a crash between their writes.
"""

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from paczero import ZOOptimizer
from paczero.durable import resume
from paczero.errors import UserError
from paczero.mechanisms import build_mechanism, mechanism_config
from paczero.mechanisms.dp import _DPMechanism, poisson_sample
from paczero.privacy.reports import PrivacyReport
from paczero.records import ReleaseRecord
from paczero.trainer import train

from sizes import small_run

SMALL = small_run("train.steps=6", "train.eval_every=3", "seed.public=3")
DP = {
    "dpzero": ["mechanism.name=dpzero", "mechanism.clip=5", "mechanism.expected_batch=3"],
    "dpaggzo": ["mechanism.name=dpaggzo", "mechanism.clip=5", "mechanism.expected_batch=3"],
}
DP_COMMON = ["mechanism.epsilon=2", "mechanism.accountant=rdp"]  # fast on tiny pools


def _run(tmp_path, name, overrides, progress=False):
    with pytest.warns(UserWarning, match="seed.secret"):
        return train("smoke", out=tmp_path / name, overrides=overrides, progress=progress)


def _public_files(run_dir):
    return {
        path.relative_to(run_dir).as_posix(): path
        for path in sorted(run_dir.rglob("*"))
        if path.is_file() and "private" not in path.parts
    }


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("name", sorted(DP))
def test_dp_public_files_are_identical_across_secret_samples_when_releases_are(
    tmp_path, monkeypatch, capsys, name
):
    """Two runs whose secret samples differ but whose releases are forced equal must publish
    the same bytes: then nothing public was computed from the sample (its loss, its size or
    its emptiness), nor from the time it took: result.json, the TensorBoard events (their
    wall times and file name), the progress lines and the printed summary included."""
    original = _DPMechanism.release_step

    def constant_release(self, derivatives, ctx):
        releases = original(self, derivatives, ctx)  # really computed over the secret sample
        for release in releases:
            release.coeff = 0.0
        return releases

    monkeypatch.setattr(_DPMechanism, "release_step", constant_release)
    overrides = [*SMALL, *DP[name], *DP_COMMON, "train.report_to=[tensorboard]"]
    if name == "dpaggzo":
        overrides.append("zo.directions=2")
    a = _run(tmp_path, "a", [*overrides, "seed.secret=1"], progress=True)
    bar_a = capsys.readouterr().err
    b = _run(tmp_path, "b", [*overrides, "seed.secret=2"], progress=True)
    bar_b = capsys.readouterr().err

    private_a = [json.loads(x) for x in (a.run_dir / "private/releases.jsonl").open()]
    private_b = [json.loads(x) for x in (b.run_dir / "private/releases.jsonl").open()]
    sizes_a = [r["batch_size"] for r in private_a]
    assert sizes_a != [r["batch_size"] for r in private_b]  # the samples did differ
    assert 0 in sizes_a + [r["batch_size"] for r in private_b]  # and one was empty
    assert all("loss" in r for r in private_a)  # the sample's loss is kept, privately

    files_a, files_b = _public_files(a.run_dir), _public_files(b.run_dir)
    assert files_a.keys() == files_b.keys() and "releases.jsonl" in files_a
    assert "result.json" in files_a and any(rel.startswith("tensorboard/") for rel in files_a)
    for rel, path in files_a.items():
        if rel == "run.json":  # a random run id and the creation time, before any sample
            continue
        assert path.read_bytes() == files_b[rel].read_bytes(), rel
    assert "withheld" in a.data["timing"] and "withheld" in a.data["memory"]
    timing = json.loads((a.run_dir / "private" / "timing.json").read_text())
    assert timing["timing"]["step_s_median"] > 0 and timing["memory"]["peak_rss_mb"] > 0
    assert str(a).replace(str(a.run_dir), "R") == str(b).replace(str(b.run_dir), "R")
    # the bar's lines; not the calibration's, shown only when it outlasts progress.DELAY,
    # which follows the machine's load (it reads public inputs only, and shows no clock)
    lines_a = [x for x in bar_a.splitlines() if x.startswith(f"{name}: ") and "calib" not in x]
    lines_b = [x for x in bar_b.splitlines() if x.startswith(f"{name}: ") and "calib" not in x]
    assert lines_a and lines_a == lines_b
    assert not re.search(r"elapsed|step/s|s/step|eta", "\n".join(lines_a))
    for record in (json.loads(x) for x in (a.run_dir / "releases.jsonl").open()):
        assert "loss" not in record and record["public"] == [{}] * len(record["coeffs"])
    # The bar shows the public dev loss, never the step's own loss.
    assert "dev_loss=" in bar_a and not re.search(r"[ ,]loss=", bar_a)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_dp_public_log_differs_only_in_released_coefficients_without_noise(tmp_path, monkeypatch):
    monkeypatch.setattr(_DPMechanism, "_noise", lambda self, step, direction: 0.0)
    overrides = [*SMALL, *DP["dpzero"], *DP_COMMON, "train.eval_every=0"]
    overrides.append("train.eval_at_start=false")
    a = _run(tmp_path, "a", [*overrides, "seed.secret=1"])
    b = _run(tmp_path, "b", [*overrides, "seed.secret=2"])
    log_a = [json.loads(x) for x in (a.run_dir / "releases.jsonl").open()]
    log_b = [json.loads(x) for x in (b.run_dir / "releases.jsonl").open()]
    assert [r["coeffs"] for r in log_a] != [r["coeffs"] for r in log_b]
    for ra, rb in zip(log_a, log_b, strict=True):
        for key in ("coeffs", "prev", "sha"):  # the hash chain follows the coefficients
            ra.pop(key), rb.pop(key)
        assert ra == rb


def test_mezo_and_paczero_logs_keep_their_public_loss_estimate(tmp_path):
    zpl = ["mechanism.name=paczero-zpl", "mechanism.subsets=4", "train.batch_size=full"]
    result = train("smoke", out=tmp_path / "zpl", overrides=[*SMALL, *zpl], progress=False)
    records = [json.loads(x) for x in (result.run_dir / "releases.jsonl").open()]
    assert all(np.isfinite(r["loss"]) for r in records)  # a function of the (known) pool
    private = [json.loads(x) for x in (result.run_dir / "private/releases.jsonl").open()]
    assert all("loss" not in r and "batch_size" not in r for r in private)


# ---------------------------------------------------------------- ZOOptimizer


def _quadratic_problem(pool=40):
    torch.manual_seed(0)
    targets = torch.randn(pool, 3)
    theta = torch.zeros(3)

    def losses(rows):
        return ((theta - targets[torch.as_tensor(rows, dtype=torch.long)]) ** 2).sum(dim=1)

    return theta, losses


def test_zo_optimizer_takes_a_dp_mechanism_rows_from_its_secret_sample():
    """As docs/python-api.md shows it: the loss function receives the rows the mechanism sampled,
    so the accountant's Poisson assumption holds through the public API too."""
    pool, steps = 40, 20
    mech = build_mechanism(
        mechanism_config("dpzero", epsilon=1.0, clip=1.0, expected_batch=4),
        pool_size=pool,
        steps=steps,
        directions=1,
    )
    theta, losses = _quadratic_problem(pool)
    seen = []

    def recording(rows):
        seen.append(np.asarray(rows).copy())
        return losses(rows)

    opt = ZOOptimizer([theta], mech, lr=1e-2, secret=5)
    for step in range(steps):
        result = opt.step(recording)
        assert result.rows_secret
        expected = poisson_sample(opt.secret, step, pool, mech.sample_rate)
        assert np.array_equal(result.rows, expected)
        assert np.array_equal(seen[-1], expected) and np.array_equal(seen[-2], expected)
    sizes = [len(rows) for rows in seen[::2]]
    assert len(set(sizes)) > 1 and max(sizes) < pool  # Poisson samples, never the whole pool
    assert mech.spent()["epsilon"] == pytest.approx(1.0, rel=2e-3)
    with pytest.raises(ValueError, match="chooses each step's rows itself"):
        opt.step(recording, indices=np.arange(pool))
    with pytest.raises(TypeError, match="must take the step's pool rows"):
        opt.step(lambda: losses(np.arange(pool)))


def test_zo_optimizer_draws_public_minibatches_and_checks_the_loss_shape():
    mech = build_mechanism(
        mechanism_config("paczero-zpl", subsets=4), pool_size=40, steps=5, directions=1
    )
    theta, losses = _quadratic_problem(40)
    opt = ZOOptimizer([theta], mech, lr=1e-2, batch_size=8, secret=1)
    result = opt.step(losses)
    assert not result.rows_secret and len(result.rows) == 8
    assert len(set(result.rows.tolist())) == 8
    assert np.array_equal(opt.step(losses, indices=np.arange(5)).rows, np.arange(5))
    with pytest.raises(ValueError, match="one loss per row"):
        opt.step(lambda rows: losses(rows)[:2])
    with pytest.raises(ValueError, match="directions"):
        ZOOptimizer([theta], mech, lr=1e-2, directions=2)


# ---------------------------------------------------------------- PACZero-MI report


def test_mi_report_states_the_budget_as_the_guarantee_and_the_charges_apart(tmp_path):
    mi = ["mechanism.name=paczero-mi", "mechanism.subsets=4", "mechanism.budget=0.05"]
    result = train("smoke", out=tmp_path / "mi", overrides=[*SMALL, *mi], progress=False)
    privacy = result.privacy
    charged = privacy["spent"]["charged"]
    assert 0 < charged <= 0.05 and privacy["mi_bound"] == 0.05
    text = PrivacyReport.from_json(privacy).describe()
    assert "I(S*; releases) <= 0.05 nats" in text
    assert f"charges summed on this run's path: {charged:.4g} nats" in text
    assert "not the mutual information" in text
    assert f"{privacy['posterior_bound']:.4f}" in text


# ---------------------------------------------------------------- secret seed


def test_the_secret_seed_is_in_no_public_file_and_resume_reads_it_from_private(tmp_path):
    seed = 918273645501
    mi = ["mechanism.name=paczero-mi", "mechanism.subsets=4", "mechanism.budget=0.05"]
    overrides = [*SMALL, *mi, f"seed.secret={seed}"]
    reference = _run(tmp_path, "reference", overrides)
    for rel, path in _public_files(reference.run_dir).items():
        assert str(seed).encode() not in path.read_bytes(), rel
    assert "secret" not in reference.data["config"]["seed"]
    assert reference.privacy["secret_source"] == "seeded"
    assert "secret:" not in (reference.run_dir / "config.yaml").read_text()
    private = json.loads((reference.run_dir / "private/secret.json").read_text())
    assert private["root"] == seed and private["source"] == "seeded"

    # A run stopped early resumes from private/ alone and ends as the uninterrupted one.
    stopped = _run(tmp_path, "stopped", [*overrides, "train.steps=6"])
    (stopped.run_dir / "result.json").unlink()
    _truncate_public_and_private(stopped.run_dir, 3)
    resumed = resume(stopped.run_dir, progress=False)
    assert _bytes(resumed.run_dir, "releases.jsonl") == _bytes(reference.run_dir, "releases.jsonl")
    assert resumed.privacy == reference.privacy


def _truncate_public_and_private(run_dir, keep):
    for log in (run_dir / "releases.jsonl", run_dir / "private/releases.jsonl"):
        lines = log.read_text().splitlines(keepends=True)
        log.write_text("".join(lines[:keep]))
    for checkpoint in (run_dir / "checkpoints").glob("step-*"):
        if int(checkpoint.name.removeprefix("step-")) > keep:
            for f in checkpoint.iterdir():
                f.unlink()
            checkpoint.rmdir()
    metrics = run_dir / "metrics.jsonl"
    kept = [
        x for x in metrics.read_text().splitlines(keepends=True) if json.loads(x)["step"] <= keep
    ]
    metrics.write_text("".join(x for x in kept if json.loads(x)["split"] == "dev"))


def _bytes(run_dir, name):
    return (run_dir / name).read_bytes()


# ---------------------------------------------------------------- the two release logs


class _Crash(Exception):
    pass


@pytest.mark.parametrize(
    "mechanism",
    [
        ["mechanism.name=paczero-mi", "mechanism.subsets=4", "mechanism.budget=0.05"],
        [*DP["dpzero"], *DP_COMMON],
    ],
    ids=["paczero-mi", "dpzero"],
)
def test_a_crash_between_the_private_and_the_public_record_resumes_exactly(
    tmp_path, monkeypatch, mechanism
):
    overrides = [*SMALL, *mechanism, "seed.secret=21", "train.checkpoint_every=2"]
    reference = _run(tmp_path, "reference", overrides)

    real = ReleaseRecord.of_step

    def crash_at_step_4(result, mech):
        if result.step == 4:
            raise _Crash  # after the private record of step 4, before its public one
        return real(result, mech)

    monkeypatch.setattr(ReleaseRecord, "of_step", crash_at_step_4)
    with pytest.raises(_Crash):
        _run(tmp_path, "run", overrides)
    run_dir = tmp_path / "run"
    assert len(_lines(run_dir / "releases.jsonl")) == 4
    assert len(_lines(run_dir / "private/releases.jsonl")) == 5
    monkeypatch.setattr(ReleaseRecord, "of_step", real)

    resumed = resume(run_dir, progress=False)
    for name in ("releases.jsonl", "private/releases.jsonl", "metrics.jsonl"):
        assert _bytes(run_dir, name) == _bytes(reference.run_dir, name), name
    for name in ("final", "best"):
        a = load_file(run_dir / "checkpoints" / f"{name}.safetensors")
        b = load_file(reference.run_dir / "checkpoints" / f"{name}.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert resumed.privacy == reference.privacy


def test_resume_refuses_release_logs_that_disagree(tmp_path):
    zpl = ["mechanism.name=paczero-zpl", "mechanism.subsets=4", "train.checkpoint_every=2"]
    result = train("smoke", out=tmp_path / "run", overrides=[*SMALL, *zpl], progress=False)
    (result.run_dir / "result.json").unlink()
    private = result.run_dir / "private/releases.jsonl"
    private.write_text("".join(_lines(private)[:3]))  # two records short of the public log
    with pytest.raises(UserError, match="public and private release logs disagree"):
        resume(result.run_dir, progress=False)


def _lines(path):
    return path.read_text().splitlines(keepends=True)


def test_public_adapter_config_lists_its_modules_sorted(tmp_path):
    """PEFT keeps target_modules in a set, which JSON lists in the process's hash order
    (PYTHONHASHSEED): two runs differing only in their secret differed in this file."""
    lora = ["model.track=lora", "train.steps=2", "train.eval_every=0", *SMALL[:3]]
    result = train("smoke", out=tmp_path / "lora", overrides=lora, progress=False)
    listed = json.loads((result.run_dir / "model" / "adapter_config.json").read_text())
    assert len(listed["target_modules"]) > 1
    assert listed["target_modules"] == sorted(listed["target_modules"])

    from paczero.exporting import ready_to_share

    class Adapter:
        target_modules = None

    adapter = Adapter()
    adapter.target_modules = {"v_proj", "q_proj", "k_proj"}
    model = type("Model", (torch.nn.Module,), {})()
    model.peft_config = {"default": adapter}
    ready_to_share(model, {"id": "base"})
    assert adapter.target_modules == ["k_proj", "q_proj", "v_proj"]


def test_a_noisy_count_denominator_says_what_it_buys():
    """The noisy count spends epsilon to hide N, which the report states anyway: the
    report says so (it is kept to reproduce the DP-AggZO paper's noise)."""
    privacy = {"framework": "dp", "denominator": "noisy-count", "count_epsilon": 0.1}
    privacy["expected_batch"] = 64
    text = PrivacyReport.from_json(privacy).denominator_text()
    assert "spends epsilon 0.1" in text and "states anyway" in text and "paper" in text
    privacy["denominator"] = "expected"
    expected = PrivacyReport.from_json(privacy).denominator_text()
    assert expected == "the expected batch q N = 64 (public; costs no epsilon)"
