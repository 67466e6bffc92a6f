"""Test-wide settings: no test reaches the network; tiny models run on one thread."""

import logging
import os

import pytest
import torch

from sizes import SMALL_RUN

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


# ---------------------------------------------------------------- shared fixtures


@pytest.fixture(scope="session")
def small_run() -> list[str]:
    """``sizes.SMALL_RUN`` as a fixture, for tests that take their overrides as arguments."""
    return list(SMALL_RUN)


@pytest.fixture(scope="session")
def bench_args():
    """``bench_args(*argv)``: `paczero bench`'s options parsed from ``argv``."""
    import argparse

    from paczero.bench import add_arguments

    def parse(*argv: str):
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return parser.parse_args(list(argv))

    return parse


@pytest.fixture(scope="session")
def glue_sst2():
    """GLUE SST-2's train and validation rows from ``$PACZERO_DATA_DIR`` (CI sets it to
    ../shared/data); the test is skipped without it."""
    data_dir = os.environ.get("PACZERO_DATA_DIR")
    if not data_dir:
        pytest.skip("PACZERO_DATA_DIR is not set (CI sets it to ../shared/data)")
    from paczero.tasks import DataConfig
    from paczero.tasks.sst2 import load_sst2

    return load_sst2(DataConfig(dir=data_dir))


@pytest.fixture(scope="module")
def tiny_model():
    """``tiny_model(name="tiny-llama", noisy=False)``: a small random model on the CPU, full
    track, built once per test module. ``noisy`` scales the weights up: random init gives
    near-uniform predictions, larger weights make a task's checks sharper."""
    from paczero.config import ModelConfig
    from paczero.models import load_model

    built = {}

    def tiny(name: str = "tiny-llama", noisy: bool = False):
        if (name, noisy) not in built:
            loaded = load_model(ModelConfig(name=name, device="cpu", track="full"), 0)
            if noisy:
                with torch.no_grad(), torch.random.fork_rng():
                    torch.manual_seed(1)
                    for _, p in loaded.trainable:
                        if p.ndim == 2:
                            p.add_(torch.randn_like(p) * 0.2)
            built[name, noisy] = loaded
        return built[name, noisy]

    return tiny


@pytest.fixture(scope="session")
def make_mechanism():
    """``make_mechanism(name, pool=..., steps=10, directions=1, public=0, secret=1, **keys)``:
    the mechanism built from its config section with ``keys``, set up on a public and a
    secret stream; returns (mechanism, public stream, secret stream)."""
    from paczero.mechanisms import build_mechanism, mechanism_config
    from paczero.privacy.randomness import RandomStream

    def make(name, *, pool, steps=10, directions=1, public=0, secret=1, **keys):
        mech = build_mechanism(
            mechanism_config(name, **keys), pool_size=pool, steps=steps, directions=directions
        )
        pub, sec = RandomStream(public, "public"), RandomStream(secret, "secret")
        mech.setup(pub, sec)
        return mech, pub, sec

    return make
