"""``--until DURATION``: stop a run or a sweep cleanly before a deadline (a GPU window, a
preemptible machine's notice), through the signal path that exists: the step in flight
finishes (an evaluation stops between its forward passes), the run stays resumable, and the
process exits with ``RESUMABLE``; the same command again continues.

The deadline counts from the start of the command, so set-up and evaluation count too. The
stop is requested ``margin(duration)`` before it (10%, at least 10 s and at most 60 s) so that
the step in flight and the exit fit in. A process still running ``HARD_MARGIN`` seconds before
the deadline (stuck in a long call into C, or finishing a run) is ended there, as a kill would
end it: runs survive kills (write-ahead logs, atomic files), so it is resumable too.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Iterator

from paczero.errors import Interrupted, UserError

RESUMABLE = 75  # EX_TEMPFAIL (sysexits.h): stopped before the deadline; run the command again
UNITS = {"s": 1, "m": 60, "h": 3600}
_reached = threading.Event()  # the deadline came (kept after the block, for the exit status)
_active = threading.Event()  # inside an until() block
_done = threading.Event()  # the until() block was left
HARD_MARGIN = 3.0  # seconds before the deadline at which a process still running is ended


class Reached(Interrupted):
    """The deadline came outside a run's loop (set-up, between runs)."""

    def __init__(self) -> None:
        Exception.__init__(self, "stopped before the --until deadline")
        self.exit_code = RESUMABLE


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '1h30m' -> seconds; a one-line UserError otherwise."""
    value = str(text).strip().lower()
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", value)
    if not value or parts is None or not any(parts.groups()):
        raise UserError(f"--until takes a duration such as 90s, 10m or 1h30m, got '{text}'")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise UserError(f"--until must be a positive duration, got '{text}'")
    return total


def margin(duration: float) -> float:
    """How long before the deadline the stop is requested."""
    return min(60.0, max(10.0, 0.1 * duration))


def reached() -> bool:
    """Whether the last deadline of this process has come (its stop was requested)."""
    return _reached.is_set()


def due() -> bool:
    """Whether work should stop now: inside an until() block whose deadline has come."""
    return _active.is_set() and _reached.is_set()


@contextlib.contextmanager
def until(duration: float | None, started: float | None = None) -> Iterator[None]:
    """Within the block, SIGTERM this process ``margin`` before ``started + duration``
    (``started``: a ``time.monotonic()`` value, default now). A run's loop handles it (the
    step in flight finishes); outside it (set-up, between a sweep's runs) it raises
    ``Reached`` where the work is, as a kill there would stop it: a run's files are written
    atomically and its logs ahead of its state, and a run stopped before its first release
    is removed and starts again. ``duration`` None: no deadline."""
    _reached.clear()
    if duration is None:
        yield
        return
    started = time.monotonic() if started is None else started
    delay = max(0.0, started + duration - margin(duration) - time.monotonic())

    hard = started + duration - HARD_MARGIN

    def fire() -> None:
        _reached.set()
        os.kill(os.getpid(), signal.SIGTERM)
        # The main thread runs a signal handler only between bytecodes: inside a long call
        # into C (an import, a model load) it may not stop in time. Then the process ends
        # here, as a kill would: the logs are written ahead and files atomically.
        if not _active.wait(0) or _done.wait(max(0.0, hard - time.monotonic())):
            return
        os.write(2, (stopped_line("the same command") + " [stopped hard]\n").encode())
        os._exit(RESUMABLE)

    def noted(signum, frame) -> None:  # set-up, or between a sweep's runs: stop there
        _reached.set()
        raise Reached()

    previous = signal.signal(signal.SIGTERM, noted)
    timer = threading.Timer(delay, fire)
    timer.daemon = True
    _active.set()
    _done.clear()
    timer.start()
    try:
        yield
    finally:
        _done.set()
        timer.cancel()
        _active.clear()
        signal.signal(signal.SIGTERM, previous)


def stopped_line(command: str) -> str:
    """What a command stopped by its deadline prints (stderr) before exiting RESUMABLE."""
    return (
        f"paczero: stopped before the --until deadline; the work so far is kept and resumable "
        f"(exit status {RESUMABLE}): run the same command again to continue ({command})"
    )
