"""Library chatter off: what a user reads is paczero's progress and one-line errors.

Shared by the CLI, the bench, the sweep workers and the bench's worker processes (a
module of its own, so that none of them imports ``paczero.cli``); ``absl_quiet`` silences
dp-accounting while the privacy accountant computes, whoever runs it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator


def quiet_libraries() -> None:
    """Silence library progress bars, hub retry warnings and dp-accounting's absl
    convergence warnings (paczero's own progress stays: ``paczero.progress``)."""
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as transformers_logging

    logging.getLogger("absl").setLevel(logging.ERROR)
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    hub_logging.set_verbosity_error()


class _Drop(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


_DROP = _Drop()


_QUIET_LOCK = threading.Lock()
_QUIET_USERS = [0]  # the filter stays while any thread (a schedule filler too) computes


@contextlib.contextmanager
def absl_quiet() -> Iterator[None]:
    """dp-accounting reports series that converge slowly (or not at all, for a target out of
    reach) through absl at WARNING, hundreds of lines before our one-line answer, which says
    what they mean: absl records made while it computes for us are dropped, whatever the
    logging set-up of the program (the record names absl, not dp-accounting, as its source,
    so a filter by origin cannot tell them apart)."""
    absl = logging.getLogger("absl")
    with _QUIET_LOCK:
        _QUIET_USERS[0] += 1
        absl.addFilter(_DROP)
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET_USERS[0] -= 1
            if not _QUIET_USERS[0]:
                absl.removeFilter(_DROP)
