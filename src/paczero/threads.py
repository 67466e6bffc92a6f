"""The torch thread count of a command that runs a model: no more threads than the cores
left idle, so a busy shared machine is not oversubscribed.

Threads that wait for a core slow every step instead of speeding it: on a loaded 2-core
machine tiny-llama took 2.29 s per step with 2 threads and 0.44 s with one (issue 35).
``OMP_NUM_THREADS``, when set, is the user's choice and is kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

MODEL_COMMANDS = ("train", "resume", "demo", "eval", "predict", "export", "audit", "bench")


def idle_cores() -> int | None:
    """The cores this process may use minus the 1-minute load average (at least 1); None
    where the load is unknown."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    return max(1, min(cores, int(cores - load + 0.5)))


def fit_threads_to_load() -> int | None:
    """Lower torch's thread count to the idle cores (never raise it); the count set, or
    None when OMP_NUM_THREADS is given or nothing was changed."""
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return None
    idle = idle_cores()
    if idle is None:
        return None
    import torch

    if idle < torch.get_num_threads():
        torch.set_num_threads(idle)
        return idle
    return None


@contextmanager
def threads_fitted_to_load() -> Iterator[None]:
    """``fit_threads_to_load`` for the length of one command, then the count it found: a
    command run in-process (a test suite, a notebook) leaves its caller's threads as they were."""
    import torch

    before = torch.get_num_threads()
    fit_threads_to_load()
    try:
        yield
    finally:
        torch.set_num_threads(before)
