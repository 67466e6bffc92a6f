"""Library chatter off: what a user reads is paczero's progress and one-line errors.

Shared by the CLI, the bench, the sweep workers and the bench's worker processes (a
module of its own, so that none of them imports ``paczero.cli``).
"""

from __future__ import annotations


def quiet_libraries() -> None:
    """Silence library progress bars, hub retry warnings and dp-accounting's absl
    convergence warnings (paczero's own progress stays: ``paczero.progress``)."""
    import logging as std_logging

    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging

    std_logging.getLogger("absl").setLevel(std_logging.ERROR)
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    hub_logging.set_verbosity_error()
