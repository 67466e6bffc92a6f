"""Public and secret randomness as two counter-based streams.

Every draw is keyed by (stream root, purpose, counters such as step and direction), so a
resumed or replayed run can neither repeat nor skip a draw, and no value of one stream can
ever be derived from the other. The secret root comes from OS entropy unless the user
pins it (then the run is reported as ``seeded``).
"""

from __future__ import annotations

import hashlib
import secrets
import warnings

import numpy as np

SEED_BITS = 63  # fits torch.Generator.manual_seed and JSON integers


def _digest(root: int, purpose: str, counters: tuple[int | str, ...]) -> bytes:
    text = "\x1f".join([str(root), purpose, *map(str, counters)])
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class RandomStream:
    """A keyed source of independent generators: ``generator(purpose, *counters)``."""

    def __init__(self, root: int, name: str):
        self._root = int(root)
        self.name = name

    @property
    def root(self) -> int:
        return self._root

    def generator(self, purpose: str, *counters: int | str) -> np.random.Generator:
        key = int.from_bytes(_digest(self._root, f"{self.name}/{purpose}", counters), "little")
        return np.random.Generator(np.random.Philox(key=key))

    def seed(self, purpose: str, *counters: int | str) -> int:
        """An integer seed (e.g. for a torch.Generator) for one purpose and counter."""
        digest = _digest(self._root, f"{self.name}/{purpose}", counters)
        return int.from_bytes(digest[:8], "little") >> (64 - SEED_BITS)

    def __repr__(self) -> str:  # never print a secret root by accident
        return f"RandomStream({self.name})"


def public_stream(seed: int) -> RandomStream:
    return RandomStream(seed, "public")


def secret_stream(seed: int | None) -> tuple[RandomStream, str]:
    """The secret stream and its source label (``os-entropy`` or ``seeded``)."""
    if seed is None:
        return RandomStream(secrets.randbits(128), "secret"), "os-entropy"
    warnings.warn(
        "seed.secret is set: the secret subset and noise are reproducible by anyone who "
        "knows this seed; use it only for tests and audits",
        stacklevel=2,
    )
    return RandomStream(seed, "secret"), "seeded"


def tensor_seed(direction_seed: int, tensor_index: int, block: int = 0) -> int:
    """Seed of one block of z for one trainable tensor under one direction."""
    parts = (tensor_index,) if block == 0 else (tensor_index, block)
    digest = _digest(direction_seed, "z", parts)
    return int.from_bytes(digest[:8], "little") >> (64 - SEED_BITS)
