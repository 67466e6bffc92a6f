"""The exceptions the CLI turns into exit statuses and one-line messages."""

import signal

from paczero.errors import Diverged, Interrupted, Stopped, UserError


def test_bad_input_exits_2():
    assert UserError("x").exit_code == 2 and str(UserError("one line")) == "one line"


def test_a_stopped_run_exits_128_plus_the_signal_and_says_how_to_resume():
    err = Interrupted("runs/a", 7, signal.SIGTERM)
    assert err.exit_code == 128 + signal.SIGTERM
    assert "after step 7" in str(err) and str(err).endswith("paczero resume runs/a")
    stopped = Stopped("export stopped; nothing written", signal.SIGINT)
    assert isinstance(stopped, Interrupted) and stopped.exit_code == 130
    assert str(stopped) == "export stopped; nothing written"


def test_divergence_names_its_step():
    err = Diverged(3, "the loss is nan")
    assert (err.step, err.what) == (3, "the loss is nan")
    assert str(err) == "training diverged at step 3: the loss is nan"
