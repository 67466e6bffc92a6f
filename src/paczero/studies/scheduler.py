"""`paczero sweep SPEC.yaml`: run every unfinished (cell, seed) of a sweep, in this process
or J worker processes at a time; a failed run is reported and the sweep goes on, and a
rerun skips finished runs and resumes killed ones through their write-ahead log, so a
sweep can span sessions and machines (copy the folder along). The spec's format:
``paczero.studies.spec``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from paczero import deadline
from paczero.errors import Interrupted, UserError
from paczero.signals import handled
from paczero.studies.folder import check_same, grow, locked, prepare
from paczero.studies.spec import SWEEP_FILE, Cell, Sweep
from paczero.studies.state import Watched, done_text, run_state, start_text, watch_run
from paczero.studies.worker import execute


class SweepInterrupted(Interrupted):
    """SIGINT/SIGTERM stopped the sweep; runs in flight wrote a checkpoint."""

    def __init__(self, message: str, signum: int):
        Exception.__init__(self, message)
        self.exit_code = 128 + signum


@dataclass
class Summary:
    path: Path
    total: int
    skipped: int = 0
    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        text = (
            f"sweep {self.path}: {len(self.done)} done, {self.skipped} already finished, "
            f"{len(self.failed)} failed (of {self.total} runs)"
        )
        if self.failed:
            text += "; failed: " + ", ".join(name for name, _ in self.failed)
        return text


def default_threads(jobs: int) -> int:
    """The user's OMP_NUM_THREADS when set (several sweeps may share the machine), else
    the cores shared out among the ``jobs`` runs."""
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) >= 1:
        return int(given)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // jobs)


PROGRESS_EVERY_S = 30.0  # a line per running run this often (tests set it lower)


@contextlib.contextmanager
def _progress_lines(watched: Callable[[], list[Watched]], say) -> Any:
    """A line per run in ``watched()`` every PROGRESS_EVERY_S seconds, from a thread."""
    import threading

    done = threading.Event()

    def loop() -> None:
        while not done.wait(PROGRESS_EVERY_S):
            for line in filter(None, (item.line() for item in watched())):
                say(line)

    thread = threading.Thread(target=loop, name="sweep-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def run_sweep(
    sweep: Sweep,
    jobs: int = 1,
    threads: int | None = None,
    echo: Callable[[str], None] | None = None,
    dry_run: bool = False,
) -> Summary:
    """Run every unfinished (cell, seed): ``jobs`` 1 in this process, else ``jobs`` worker
    processes at a time with ``threads`` each (default cores // jobs). A failed run is
    reported and the sweep goes on; SIGINT/SIGTERM stop it after the runs in flight wrote a
    checkpoint (``SweepInterrupted``)."""
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    say = echo or (lambda line: print(line, flush=True))
    given_threads = threads is not None
    threads = threads or default_threads(jobs)
    if dry_run:
        return _plan(sweep, say)
    grows = prepare(sweep)
    with locked(sweep) as lock_fd:
        if grows:
            grow(sweep)
        states = {(c.name, s): run_state(sweep, c, s) for c, s in sweep.runs()}
        todo = [(c, s) for c, s in sweep.runs() if states[(c.name, s)] != "finished"]
        summary = Summary(sweep.path, total=len(states), skipped=len(states) - len(todo))
        how = "in this process" if jobs == 1 else f"{jobs} processes at a time"
        source = (
            "" if given_threads or "OMP_NUM_THREADS" not in os.environ else " (OMP_NUM_THREADS)"
        )
        say(
            f"sweep {sweep.path}: {len(states)} runs, {summary.skipped} already finished, "
            f"{len(todo)} to do ({how}, {threads} thread{'s' * (threads > 1)} each{source})"
        )
        if jobs == 1:
            _run_here(sweep, todo, states, threads, summary, say)
        else:
            _run_workers(sweep, todo, states, jobs, threads, lock_fd, summary, say)
    say(summary.line())
    return summary


def _plan(sweep: Sweep, say) -> Summary:
    runs = sweep.runs()
    if (sweep.path / SWEEP_FILE).exists():
        check_same(sweep)
    say(f"sweep {sweep.path}: {len(runs)} runs (dry run: nothing is written)")
    for cell, seed in runs:
        state = run_state(sweep, cell, seed)
        sets = " ".join(cell.overrides(seed))
        say(f"  {cell.name}/seed-{seed}: {state} (base {cell.base}; {sets})")
    return Summary(sweep.path, total=len(runs))


def _run_here(sweep, todo, states, threads, summary: Summary, say) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    current: list[Watched] = []
    try:
        for i, (cell, seed) in enumerate(todo, 1):
            name = f"{cell.name}/seed-{seed}"
            state = states[(cell.name, seed)]
            if deadline.due():  # the last run finished as the deadline came: no other
                raise SweepInterrupted(
                    f"sweep stopped before its deadline, before {name}", signal.SIGTERM
                )
            say(start_text(i, len(todo), cell, seed, state, sweep))
            try:
                watch = watch_run(sweep, cell, seed, f"[{i}/{len(todo)}]        {name}")
                current[:] = [watch]
                with _progress_lines(lambda: list(current), say):
                    execute(sweep, cell, seed)
            except Interrupted as err:
                raise SweepInterrupted(
                    f"sweep interrupted during {name} ({err}); rerun the sweep to continue",
                    err.exit_code - 128,
                ) from None
            except UserError as err:
                _failed(summary, say, i, len(todo), name, str(err))
                continue
            except Exception as err:  # noqa: BLE001 - one broken run must not stop the sweep
                _failed(summary, say, i, len(todo), name, f"{type(err).__name__}: {err}")
                continue
            summary.done.append(name)
            say(f"[{i}/{len(todo)}] done   {done_text(sweep, cell, seed, name, watch)}")
    finally:
        torch.set_num_threads(before)


def _failed(summary: Summary, say, i: int, n: int, name: str, error: str, log: Path | None = None):
    line = error.strip().splitlines()[-1] if error.strip() else "failed"
    summary.failed.append((name, line))
    where = f" (log: {log})" if log else ""
    say(f"[{i}/{n}] FAILED {name}: {line}{where}")


def _run_workers(sweep, todo, states, jobs, threads, lock_fd, summary: Summary, say) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.setdefault("PYTHONWARNINGS", "ignore")
    pending = list(enumerate(todo, 1))
    running: dict[int, tuple[subprocess.Popen, Cell, int, Path, int]] = {}
    watched: dict[int, Watched] = {}
    stop: list[int] = []  # the signal that stops the sweep
    forwarded = False

    def handler(signum, frame):
        if not stop:
            stop.append(signum)

    # Progress lines come from this loop, not a thread: the kernel sends a worker its
    # parent-death signal at each exit of the thread that forked it, and again when the
    # next thread of a dying sweep exits (a second SIGTERM stops a run without a
    # checkpoint); with one thread a killed sweep sends each worker one SIGTERM.
    next_lines = time.monotonic() + PROGRESS_EVERY_S
    with handled(handler):
        while pending or running:
            if time.monotonic() >= next_lines:
                for item in [w for _, w in sorted(watched.items())]:
                    if (line := item.line()) is not None:
                        say(line)
                next_lines = time.monotonic() + PROGRESS_EVERY_S
            while pending and len(running) < jobs and not stop:
                i, (cell, seed) = pending.pop(0)
                state = states[(cell.name, seed)]
                say(start_text(i, len(todo), cell, seed, state, sweep))
                proc, log, start = _spawn(sweep, cell, seed, state, env, lock_fd)
                running[i] = (proc, cell, seed, log, start)
                watched[i] = watch_run(
                    sweep, cell, seed, f"[{i}/{len(todo)}]        {cell.name}/seed-{seed}"
                )
            if stop and running and not forwarded:
                for proc, *_ in running.values():
                    if proc.poll() is None:
                        with contextlib.suppress(ProcessLookupError):
                            proc.send_signal(signal.SIGTERM)  # finish the step, checkpoint
                forwarded = True  # once: a second signal would kill the worker at once
            time.sleep(0.1)
            for i in list(running):
                if running[i][0].poll() is None:
                    continue
                entry = running.pop(i)
                _ended(sweep, i, len(todo), entry, watched.pop(i), bool(stop), summary, say)
            if stop and not running:
                break
    if stop:
        raise SweepInterrupted(
            "sweep interrupted; runs in flight wrote a checkpoint; rerun the sweep to continue",
            stop[0],
        )


def _spawn(sweep: Sweep, cell: Cell, seed: int, state: str, env: dict[str, str], lock_fd: int):
    """A worker process for one run, its output appended to ``<cell>/seed-<s>.log``;
    returns the process, the log and where this attempt's output starts in it."""
    log = sweep.path / cell.name / f"seed-{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as handle:
        handle.write(f"== {datetime.now().isoformat(timespec='seconds')} {state}\n")
        start = handle.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "paczero.studies.worker", str(sweep.path), cell.name, str(seed)],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            pass_fds=(lock_fd,),
            preexec_fn=_die_with_parent(os.getpid()),
        )
    return proc, log, start


def _ended(sweep: Sweep, i: int, n: int, entry, watch: Watched, stopping: bool, summary, say):
    """Say how the worker of ``entry`` (process, cell, seed, log, start of its output)
    ended: done, stopped by the sweep's signal, or failed with its last error line."""
    proc, cell, seed, log, start = entry
    name = f"{cell.name}/seed-{seed}"
    if proc.returncode == 0:
        summary.done.append(name)
        say(f"[{i}/{n}] done   {done_text(sweep, cell, seed, name, watch)}")
    elif stopping and proc.returncode in (130, 143):
        say(f"[{i}/{n}] stopped {name} (checkpoint written)")
    elif stopping and proc.returncode < 0:
        say(f"[{i}/{n}] stopped {name} (killed; its release log resumes it)")
    else:
        _failed(summary, say, i, n, name, _error_line(log, start), log)


def _error_line(log: Path, start: int) -> str:
    """The worker's one-line error: its last 'paczero: error:' line, else its last line."""
    try:
        with open(log, "rb") as handle:
            handle.seek(start)
            lines = [x.strip() for x in handle.read().decode(errors="replace").splitlines()]
    except OSError:
        return "failed (no log)"
    lines = [x for x in lines if x]
    for line in reversed(lines):
        if line.startswith("paczero: error: "):
            return line.removeprefix("paczero: error: ")
    return lines[-1] if lines else "failed with no output"


def _die_with_parent(parent: int):
    """Linux: a worker gets SIGTERM (finish the step, checkpoint, stop) when the sweep dies.
    prctl is looked up here, so the forked child only makes the call."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: workers outlive a killed sweep
        prctl = None

    def setup() -> None:
        if prctl is not None:
            prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the sweep died before prctl took effect
            os._exit(143)

    return setup
