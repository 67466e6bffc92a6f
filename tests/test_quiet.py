"""Library chatter off: transformers, the hub and absl log errors only, no progress bars."""

import logging

import pytest
from huggingface_hub.utils import logging as hub_logging
from transformers.utils import logging as hf_logging

from paczero.quiet import quiet_libraries


@pytest.fixture
def restored():
    """Put the libraries' logging back as it was (other tests read warnings)."""
    absl = logging.getLogger("absl")
    before = (absl.level, hf_logging.get_verbosity(), hub_logging.get_verbosity())
    bars = hf_logging.is_progress_bar_enabled()
    yield
    absl.setLevel(before[0])
    hf_logging.set_verbosity(before[1])
    hub_logging.set_verbosity(before[2])
    if bars:
        hf_logging.enable_progress_bar()


def test_quiet_libraries_leaves_errors_only(restored):
    logging.getLogger("absl").setLevel(logging.WARNING)
    hf_logging.set_verbosity_warning()
    quiet_libraries()
    assert logging.getLogger("absl").level == logging.ERROR
    assert hf_logging.get_verbosity() == logging.ERROR
    assert hub_logging.get_verbosity() == logging.ERROR
    assert not hf_logging.is_progress_bar_enabled()
