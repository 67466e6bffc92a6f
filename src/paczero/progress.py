"""Progress on every long wait: a bar on a terminal, one plain line every few seconds elsewhere.

A log file (``paczero train ... 2> train.log``, a batch system, CI) gets no carriage
returns: where the progress stream is not a terminal, a bar becomes a plain line printed
at most every ``PACZERO_PROGRESS_INTERVAL`` seconds (default 5) and once at the end.

Three shapes of wait:

- ``Bar``: a loop of known length (training steps), with a postfix of public figures;
- ``track``: an inner loop (evaluation batches, SQuAD generation) named by the ``phase``
  around it; silent when it ends within ``DELAY`` seconds;
- ``waiting``: one call of unknown length (the GGUF conversion, the DP calibration): a
  ticking clock, silent when it ends within ``DELAY`` seconds.

``enabled(False)`` (``train(progress=False)``, ``--quiet``, ranks other than 0) silences
all of them; ``PACZERO_PROGRESS=off`` does so for the whole process. Progress output holds
public values only (docs/algorithms.md 8): the callers pass what the run directory shows.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TextIO

INTERVAL_ENV = "PACZERO_PROGRESS_INTERVAL"
UNTIMED_BAR = "{l_bar}{bar}| {n_fmt}/{total_fmt}{postfix}"  # tqdm without elapsed and rate
SWITCH_ENV = "PACZERO_PROGRESS"
DEFAULT_INTERVAL = 5.0  # seconds between plain lines
DELAY = 2.0  # inner loops and waits shorter than this print nothing

_enabled: ContextVar[bool] = ContextVar("paczero_progress_enabled", default=True)
_phase: ContextVar[str | None] = ContextVar("paczero_progress_phase", default=None)


def interval() -> float:
    """Seconds between two plain lines (``PACZERO_PROGRESS_INTERVAL``, default 5)."""
    raw = os.environ.get(INTERVAL_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value >= 0 else DEFAULT_INTERVAL


def is_enabled() -> bool:
    switch = os.environ.get(SWITCH_ENV, "").strip().lower()
    return _enabled.get() and switch not in ("0", "off", "false", "no", "none")


@contextlib.contextmanager
def enabled(flag: bool) -> Iterator[None]:
    """Progress on (``True``) or off for everything inside, this thread and context."""
    token = _enabled.set(bool(flag))
    try:
        yield
    finally:
        _enabled.reset(token)


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def honours_progress_flag(fn: Callable) -> Callable:
    """Decorate an entry point that takes ``progress=``: every wait inside it (model
    conversion, calibration, evaluations) follows the flag, and only rank 0 shows any."""
    signature = inspect.signature(fn)
    default = signature.parameters["progress"].default

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        flag = signature.bind_partial(*args, **kwargs).arguments.get("progress", default)
        with enabled(bool(flag) and _rank() == 0):
            return fn(*args, **kwargs)

    return wrapper


def stream() -> TextIO:
    return sys.stderr


def is_terminal(out: TextIO | None = None) -> bool:
    out = out if out is not None else stream()
    try:
        return bool(out.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _write_line(out: TextIO, text: str) -> None:
    try:
        out.write(text + "\n")
        out.flush()
    except (OSError, ValueError):  # a closed or broken stream never stops the work
        pass


class Bar:
    """A progress bar with tqdm's small interface (iterate, ``update``, ``set_postfix``,
    ``close``): tqdm on a terminal, plain lines otherwise.

    ``timing=False`` (a DP run, whose step times grow with its secret sample): no elapsed
    time, rate or eta, and plain lines every twentieth of the total rather than every few
    seconds, so that what a log holds is a function of the step count alone.
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        enabled: bool = True,
        leave: bool = True,
        delay: float = 0.0,
        out: TextIO | None = None,
        timing: bool = True,
    ):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable) + initial  # type: ignore[arg-type]
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = initial
        self.initial = initial
        self.delay = delay
        self.out = out if out is not None else stream()
        self.enabled = enabled and is_enabled()
        self.timing = timing
        self.postfix: dict[str, Any] = {}
        self.started = time.monotonic()
        self._printed_at: float | None = None
        self._closed = False
        self._tqdm = None
        if self.enabled and is_terminal(self.out):
            from tqdm.auto import tqdm

            self._tqdm = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                unit=unit,
                leave=leave,
                delay=delay,
                file=self.out,
                dynamic_ncols=True,
                **({} if timing else {"bar_format": UNTIMED_BAR}),
            )
        elif self.enabled and delay <= 0:
            self._print()  # where a plain log starts

    @property
    def plain(self) -> bool:
        return self.enabled and self._tqdm is None

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this Bar was made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._tqdm is not None:
            self._tqdm.update(n)
        elif self.plain and not self.timing:
            every = max(1, (self.total or 0) // 20)
            if self.n % every == 0 and self.n != (self.total or 0):  # close() prints the end
                self._print()
        elif self.plain:
            now = time.monotonic()
            if now - self.started < self.delay:
                return
            last = self._printed_at if self._printed_at is not None else self.started
            if self._printed_at is None and self.delay > 0 or now - last >= interval():
                self._print(now)

    def set_postfix(self, values: dict[str, Any], refresh: bool = True) -> None:
        self.postfix = dict(values)
        if self._tqdm is not None:
            self._tqdm.set_postfix(values, refresh=refresh)

    def write(self, text: str) -> None:
        if self._tqdm is not None:
            self._tqdm.write(text, file=self.out)
        else:
            _write_line(self.out, text)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.plain:
            elapsed = time.monotonic() - self.started
            if not self.timing or self._printed_at is not None or elapsed >= self.delay:
                self._print(final=True)

    def line(self, final: bool = False) -> str:
        """The plain line: ``desc: n/total unit (p%), elapsed, rate, eta | postfix``."""
        elapsed = time.monotonic() - self.started
        done = self.n - self.initial
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            head += f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)"
        else:
            head += f"{self.n} {self.unit}"
        parts = [head, f"{_duration(elapsed)} elapsed"] if self.timing else [head]
        if self.timing and done > 0 and elapsed > 0:
            per = elapsed / done
            parts.append(f"{per:.3g} s/{self.unit}" if per >= 1 else f"{1 / per:.3g} {self.unit}/s")
            if self.total and not final and self.n < self.total:
                parts.append(f"eta {_duration(per * (self.total - self.n))}")
        text = ", ".join(parts)
        if self.postfix:
            text += " | " + ", ".join(f"{k}={v}" for k, v in self.postfix.items())
        return text + (" (done)" if final and self.total and self.n >= self.total else "")

    def _print(self, now: float | None = None, final: bool = False) -> None:
        self._printed_at = time.monotonic() if now is None else now
        _write_line(self.out, self.line(final=final))


@contextlib.contextmanager
def phase(label: str) -> Iterator[None]:
    """Name the inner loops inside (``track``): "dev evaluation", "test evaluation"."""
    token = _phase.set(label)
    try:
        yield
    finally:
        _phase.reset(token)


def label(what: str) -> str:
    """``what`` within the current phase: "dev evaluation: generating answers"."""
    current = _phase.get()
    return f"{current}: {what}" if current else what


def track(
    items: Iterable,
    *,
    total: int | None = None,
    unit: str = "it",
    size: Callable[[Any], int] | None = None,
    desc: str | None = None,
) -> Iterator[Any]:
    """Yield ``items`` while showing progress after ``DELAY`` seconds; ``size(item)`` is how
    much of ``total`` an item is (default 1)."""
    label = desc or _phase.get() or "working"
    bar = Bar(total=total, desc=label, unit=unit, leave=False, delay=DELAY)
    try:
        for item in items:
            yield item
            bar.update(size(item) if size is not None else 1)
    finally:
        bar.close()


@contextlib.contextmanager
def waiting(desc: str, *, delay: float | None = None, clock: bool = True) -> Iterator[None]:
    """A call of unknown length: after ``delay`` seconds (default ``DELAY``) a ticking clock
    (terminal) or a plain line every interval; a closing line says how long it took. A
    delay of 0 says it at once, from the caller's thread (not when the clock thread runs).
    ``clock=False`` (a DP run's output shows no wall-clock time): one line, then "done"."""
    delay = DELAY if delay is None else delay
    if not is_enabled():
        yield
        return
    out = stream()
    done = threading.Event()
    started = time.monotonic()
    shown: dict[str, Any] = {}

    def show() -> None:
        if is_terminal(out) and clock:
            from tqdm.auto import tqdm

            bar = tqdm(total=None, desc=desc, file=out, bar_format="{desc}: {elapsed}", leave=False)
            shown["bar"] = bar
        else:
            shown["plain"] = True
            _write_line(out, f"{desc} ...")

    def tick() -> None:
        if not shown:
            if done.wait(delay):
                return
            show()
        if "bar" in shown:
            while not done.wait(1.0):
                shown["bar"].refresh()
        elif clock:
            every = max(interval(), 1.0)
            while not done.wait(every):
                _write_line(out, f"{desc} ... {_duration(time.monotonic() - started)} elapsed")

    if delay <= 0:
        show()
    thread = threading.Thread(target=tick, name="paczero-progress", daemon=True)
    thread.start()
    failed = True
    try:
        yield
        failed = False
    finally:
        done.set()
        thread.join()
        if "bar" in shown:
            shown["bar"].close()
        if shown and not failed:  # a failure says so in its own one line, not "done"
            took = f" in {_duration(time.monotonic() - started)}" if clock else ""
            _write_line(out, f"{desc}: done{took}")


@contextlib.contextmanager
def quiet_library_bars() -> Iterator[None]:
    """transformers' and huggingface_hub's own bars off inside (saving a model draws one),
    restored after: ours are the ones a user reads."""
    restore: list[Callable[[], None]] = []
    try:
        from transformers.utils import logging as tf_logging

        if tf_logging.is_progress_bar_enabled():
            tf_logging.disable_progress_bar()
            restore.append(tf_logging.enable_progress_bar)
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    try:
        from huggingface_hub import utils as hub_utils

        if not hub_utils.are_progress_bars_disabled():
            hub_utils.disable_progress_bars()
            restore.append(hub_utils.enable_progress_bars)
    except (ImportError, AttributeError):  # pragma: no cover - older huggingface_hub
        pass
    try:
        yield
    finally:
        for undo in restore:
            undo()
