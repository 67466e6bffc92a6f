"""Progress on every long wait: a bar on a terminal, plain lines (no carriage returns) in a
log; the last line of a run shows its final evaluation (issue #17 items 3, 4, 6)."""

import io
import json
import re

import pytest

from paczero import progress
from paczero.cli import main
from paczero.trainer import train

from sizes import small_run

SMALL = small_run("train.steps=6")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def every_update(monkeypatch):
    """A plain line at every update and no grace period, so short tests see them."""
    monkeypatch.setenv(progress.INTERVAL_ENV, "0")
    monkeypatch.setattr(progress, "DELAY", 0.0)


def test_plain_lines_off_a_terminal_and_a_bar_on_one(every_update):
    out = io.StringIO()
    bar = progress.Bar(total=3, desc="train", unit="step", out=out)
    for i in range(3):
        bar.set_postfix({"loss": f"{0.5 - i / 10:.2f}"})
        bar.update(1)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("train: 0/3 step (0%)")
    assert lines[-1].startswith("train: 3/3 step (100%)") and lines[-1].endswith("(done)")
    assert "loss=0.30" in lines[-1]

    tty = _Terminal()
    with progress.Bar(total=3, desc="train", out=tty) as bar:
        bar.update(3)
    assert "\r" in tty.getvalue()  # tqdm's bar, redrawn in place


def test_plain_lines_come_at_most_every_interval(monkeypatch):
    monkeypatch.setenv(progress.INTERVAL_ENV, "3600")
    out = io.StringIO()
    with progress.Bar(total=100, desc="steps", out=out) as bar:
        for _ in range(100):
            bar.update(1)
    assert len(out.getvalue().splitlines()) == 2  # the start and the end


def test_disabled_progress_prints_nothing(every_update):
    out = io.StringIO()
    with progress.enabled(False):
        with progress.Bar(total=2, out=out) as bar:
            bar.update(2)
        list(progress.track(range(3), total=3))
        with progress.waiting("nothing"):
            pass
    assert out.getvalue() == ""


def test_short_waits_are_silent_and_long_ones_say_so(monkeypatch, capsys):
    monkeypatch.setenv(progress.INTERVAL_ENV, "0")
    assert list(progress.track(range(3), total=3)) == [0, 1, 2]
    with progress.waiting("quick"):
        pass
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress, "DELAY", 0.0)
    with progress.phase("dev evaluation"):
        list(progress.track([[1, 2], [3]], total=3, unit="ex", size=len))
    with progress.waiting("converting", delay=0.0):
        pass  # a delay of 0 says so at once, however short the wait and loaded the machine
    err = capsys.readouterr().err
    assert "dev evaluation: 3/3 ex" in err and "converting ..." in err
    assert "converting: done in" in err and "\r" not in err


def test_cli_train_off_a_terminal_writes_plain_lines_and_the_final_dev_figure(
    tmp_path, monkeypatch, capsys
):
    """A log file gets lines without carriage returns; the last one shows the final dev
    evaluation (it used to show the one before)."""
    monkeypatch.setenv(progress.INTERVAL_ENV, "0")
    out = tmp_path / "run"
    sets = [*SMALL, "train.eval_every=0", "train.lr=0.05"]
    argv = ["train", "smoke", "--out", str(out)] + [x for s in sets for x in ("--set", s)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("mezo: ")]
    assert len(lines) >= 7 and lines[-1].startswith("mezo: 6/6 step")
    result = json.loads((out / "result.json").read_text())
    best = result["metrics"]["dev_best"]["accuracy"]
    shown = re.search(r"dev_acc=([0-9.]+)", lines[-1]).group(1)
    assert shown == f"{best:.3f}"
    assert result["metrics"]["best_step"] == 6  # the final evaluation is the best one


def test_the_final_line_shows_a_dev_evaluation_made_at_the_last_step(tmp_path, monkeypatch):
    """The dev figure on the bar is the best dev metric including the last evaluation."""
    monkeypatch.setenv(progress.INTERVAL_ENV, "0")
    buffer = io.StringIO()
    monkeypatch.setattr(progress, "stream", lambda: buffer)
    # The initial model scores low on purpose: a learning rate that moves it a lot.
    sets = [*SMALL, "train.lr=0.05", "train.eval_every=0", "data.seed=1"]
    result = train("smoke", out=tmp_path / "run", overrides=sets, progress=True)
    last = [line for line in buffer.getvalue().splitlines() if line.startswith("mezo:")][-1]
    metrics = result.data["metrics"]
    assert metrics["best_step"] == 6 and metrics["dev_history"][0]["accuracy"] < 0.4
    assert f"dev_acc={metrics['dev_best']['accuracy']:.3f}" in last


def test_evaluation_shows_progress(tmp_path, monkeypatch, capsys, every_update):
    """`paczero eval` and the trainer's evaluations report their batches."""
    run = train("smoke", out=tmp_path / "run", overrides=SMALL, progress=False).run_dir
    capsys.readouterr()
    assert main(["eval", str(run), "--set", "train.eval_batch=4"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"test evaluation: 16/16 ex", err) and "\r" not in err
    train("smoke", out=tmp_path / "again", overrides=SMALL, progress=True)
    err = capsys.readouterr().err
    assert "dev evaluation: 16/16 ex" in err and "test evaluation: 16/16 ex" in err


def test_quiet_runs_print_no_progress(tmp_path, capsys, every_update):
    train("smoke", out=tmp_path / "run", overrides=SMALL, progress=False)
    assert capsys.readouterr().err == ""


def test_dp_calibration_and_gguf_conversion_say_what_they_wait_for(
    tmp_path, monkeypatch, capsys, every_update
):
    from paczero import models
    from paczero.mechanisms import build_mechanism, mechanism_config

    cfg = mechanism_config("dpzero", epsilon=2, clip=5, expected_batch=4, accountant="rdp")
    build_mechanism(cfg, pool_size=64, steps=20, directions=1)
    err = capsys.readouterr().err
    assert "dpzero: calibrating the noise to epsilon 2 over 20 steps" in err

    # The conversion itself is transformers' (tens of seconds on the real file): faked here.
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF not really")
    tiny = models.build_tiny_model("tiny-llama", 0), models.tiny_tokenizer()
    monkeypatch.setattr(models, "_load_gguf", lambda path: tiny)
    monkeypatch.setenv("PACZERO_CACHE_DIR", str(tmp_path / "cache"))
    models._load_gguf_cached(fake, "gguf-model", models.DTYPES["float32"])
    err = capsys.readouterr().err
    assert "converting model.gguf to float32" in err and "done in" in err


def test_a_wait_that_fails_does_not_say_done(monkeypatch, capsys):
    monkeypatch.setenv(progress.INTERVAL_ENV, "0")
    with (
        pytest.raises(RuntimeError, match="unreachable"),
        progress.waiting("calibrating", delay=0.0),
    ):
        raise RuntimeError("unreachable")
    err = capsys.readouterr().err
    assert "calibrating ..." in err and "done" not in err


def test_a_step_0_dev_figure_is_labelled_as_such(tmp_path, monkeypatch):
    """With train.eval_every 0 the bar's dev figure is the untrained model's until the
    final evaluation: each line says so instead of seeming to repeat a fresh evaluation."""
    monkeypatch.setenv(progress.INTERVAL_ENV, "0")
    buffer = io.StringIO()
    monkeypatch.setattr(progress, "stream", lambda: buffer)
    sets = [*SMALL, "train.lr=0.05", "train.eval_every=0", "data.seed=1"]
    train("smoke", out=tmp_path / "run", overrides=sets, progress=True)
    lines = [line for line in buffer.getvalue().splitlines() if line.startswith("mezo:")]
    middle = [line for line in lines[:-1] if "dev_acc=" in line]
    assert middle and all("(step 0)" in line for line in middle)
    assert "(step 0)" not in lines[-1]  # the final evaluation beat it (best step 6)


def test_a_dp_calibration_line_shows_no_clock(monkeypatch, capsys, every_update):
    """Issue 36 item 6: a DP run's output holds no wall-clock time, not even of a step that
    depends on public inputs only (the rule is simpler to keep whole)."""
    import time

    from paczero.mechanisms import build_mechanism, mechanism_config
    from paczero.privacy import accounting

    real = accounting.DPAccountant.calibrate.__func__

    def slow(cls, *args, **kwargs):
        time.sleep(1.2)  # long enough for the repeating line (every second at most)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(accounting.DPAccountant, "calibrate", classmethod(slow))
    cfg = mechanism_config("dpzero", epsilon=2, clip=5, expected_batch=4, accountant="rdp")
    build_mechanism(cfg, pool_size=64, steps=20, directions=1)
    err = capsys.readouterr().err
    assert "dpzero: calibrating the noise" in err and ": done" in err
    assert "done in" not in err and "elapsed" not in err and not re.search(r"\d s\b", err)
