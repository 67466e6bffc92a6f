"""Test-wide settings: no test reaches the network; tiny models run on one thread."""

import logging
import os

import pytest
import torch

# dp-accounting's RDP series report slow convergence through absl at WARNING: noise here.
logging.getLogger("absl").setLevel(logging.ERROR)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup fails at once instead of retrying
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models run fastest on one thread; OpenMP threads crawl when the CPUs are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
