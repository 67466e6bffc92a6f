"""Candidate subsets: the public membership matrix and all M subset statistics at once.

The secret of a PAC-private run is which of M candidate subsets of the pool was used. The
candidates are public (the attacker may know them); each example sits in exactly M/2 of
them, so every example's membership prior is 1/2. All M subset means come from one
matrix-vector product, so a step costs the same for any M.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from paczero.mechanisms.base import Mechanism, MechanismSection
from paczero.privacy.randomness import RandomStream
from paczero.values import Float, Int

CONSTRUCTIONS = ("random-halves", "disjoint-pairs")


class SubsetKeys(MechanismSection):
    """The keys every mechanism over the M candidate subsets reads (its own follow)."""

    subsets: Int = Field(128, ge=2)
    construction: Literal["random-halves", "disjoint-pairs"] = "random-halves"
    clip: Float | None = Field(None, gt=0)

    def derivative_clip(self) -> float | None:
        return self.clip

    @field_validator("subsets")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (each example is in exactly M/2 subsets), got {value}")
        return value


def membership_matrix(n: int, m: int, construction: str, rng: np.random.Generator) -> np.ndarray:
    """An N x M bool matrix: row i marks the M/2 candidate subsets that hold example i.

    ``random-halves`` picks each row's M/2 subsets uniformly (the paper's default);
    ``disjoint-pairs`` draws M/2 random halves A_k of the pool and uses (A_k, complement)
    as columns (2k, 2k+1), so the pairs partition the pool.
    """
    if n < 1:
        raise ValueError(f"the pool must hold at least one example, got n={n}")
    if m < 2 or m % 2:
        raise ValueError(f"the number of subsets must be even and >= 2, got {m}")
    if construction == "random-halves":
        # The M/2 smallest of M iid uniform keys are a uniformly random M/2-subset.
        order = np.argsort(rng.random((n, m)), axis=1, kind="stable")
        a = np.zeros((n, m), dtype=bool)
        np.put_along_axis(a, order[:, : m // 2], True, axis=1)
        return a
    if construction == "disjoint-pairs":
        a = np.zeros((n, m), dtype=bool)
        half = n // 2
        for k in range(m // 2):
            members = rng.permutation(n)[:half]
            a[members, 2 * k] = True
            a[:, 2 * k + 1] = ~a[:, 2 * k]
        return a
    raise ValueError(f"unknown subset construction '{construction}'; use one of {CONSTRUCTIONS}")


def membership_digest(a: np.ndarray) -> str:
    """A short fingerprint of A, saved with the posterior so a resume cannot silently
    pair it with different candidates (which would void the accounting)."""
    a = np.asarray(a, dtype=bool)
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(a.shape, dtype=np.int64).tobytes())
    h.update(np.packbits(a).tobytes())
    return h.hexdigest()


def subset_means(a: np.ndarray, g: np.ndarray, *, return_counts: bool = False):
    """Means of g over each candidate subset, from one product A^T g (float64).

    ``a`` holds the rows of the batch (``A[indices]``), bool or 0/1 numbers. A subset with no
    member in the batch has mean 0 (sign +1); pass ``return_counts=True`` to get the member
    counts so the caller can report empty subsets.
    """
    a = np.asarray(a)
    g = np.asarray(g, dtype=np.float64)
    if a.ndim != 2 or g.ndim != 1 or a.shape[0] != g.shape[0]:
        raise ValueError(f"shape mismatch: A rows {a.shape} vs g {g.shape}")
    if a.dtype != np.float64:
        a = a.astype(np.float64)
    sums = g @ a
    counts = a.sum(axis=0)
    means = sums / np.maximum(counts, 1.0)
    if return_counts:
        return means, counts.astype(np.int64)
    return means


def subset_signs(means: np.ndarray) -> np.ndarray:
    """+1/-1 per subset; a mean of exactly 0 reads +1, as in the paper."""
    return np.where(np.asarray(means) >= 0, 1, -1).astype(np.int8)


def prepare_derivatives(
    g: np.ndarray, indices: np.ndarray, pool_size: int, clip: float | None
) -> np.ndarray:
    """Validated float64 per-example derivatives, clipped to [-c, c] when ``clip`` is set.

    A non-finite g is refused: its sign would be meaningless and a NaN would silently read
    as -1.
    """
    g = np.asarray(g, dtype=np.float64)
    indices = np.asarray(indices)
    if g.ndim != 1 or indices.shape != g.shape:
        raise ValueError(f"g {g.shape} and ctx.indices {indices.shape} must be 1-D of one length")
    if g.size and (indices.min() < 0 or indices.max() >= pool_size):
        raise ValueError(f"ctx.indices must be pool rows in [0, {pool_size})")
    if not np.all(np.isfinite(g)):
        raise ValueError("non-finite per-example derivatives (loss overflow or NaN)")
    if clip is not None:
        g = np.clip(g, -clip, clip)
    return g


class SubsetMechanism(Mechanism):
    """Shared by every mechanism that reads the M candidate subsets.

    The membership matrix comes from the public stream, the secret index from the secret
    stream; a restored secret index (``load_state_dict``) is never re-drawn by ``setup``.
    """

    uses_subsets = True

    @classmethod
    def check_config(cls, cfg: SubsetKeys, *, pool_size: int, steps: int, directions: int) -> None:
        super().check_config(cfg, pool_size=pool_size, steps=steps, directions=directions)
        if cfg.subsets > pool_size:
            raise ValueError(
                f"data.num_train ({pool_size}) is smaller than mechanism.subsets ({cfg.subsets})"
            )

    def configure(self) -> None:
        cfg = self.cfg
        self.subsets = int(cfg.subsets)
        self.construction = cfg.construction
        self.clip = cfg.clip
        self.skip_all_zero = bool(cfg.skip_all_zero)
        self._membership: np.ndarray | None = None
        self._weights: np.ndarray | None = None  # float64 copy of A: no per-step cast
        self._digest: str | None = None
        self._expected_digest: str | None = None
        self._secret_index: int | None = None

    def setup(self, public: RandomStream, secret: RandomStream) -> None:
        a = membership_matrix(
            self.pool_size, self.subsets, self.construction, public.generator("membership")
        )
        self._membership = a
        self._weights = a.astype(np.float64)
        self._digest = membership_digest(a)
        self._check_digest()
        if self._secret_index is None:
            self._secret_index = int(secret.generator("secret-index").integers(self.subsets))

    @property
    def membership(self) -> np.ndarray:
        """The public N x M membership matrix (read-only view)."""
        if self._membership is None:
            raise RuntimeError(f"{self.name}: call setup(public, secret) before use")
        view = self._membership.view()
        view.flags.writeable = False
        return view

    def _subset_stats(self, g: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(means, member counts) over batch ∩ subset for all M subsets, g already prepared."""
        if self._weights is None:
            raise RuntimeError(f"{self.name}: call setup(public, secret) before release")
        indices = np.asarray(indices)
        full = indices.shape[0] == self.pool_size and np.array_equal(
            indices, np.arange(self.pool_size)
        )
        rows = self._weights if full else self._weights[indices]
        return subset_means(rows, g, return_counts=True)

    def _secret(self) -> int:
        if self._secret_index is None:
            raise RuntimeError(f"{self.name}: call setup(public, secret) before release")
        return self._secret_index

    def _check_digest(self) -> None:
        expected, actual = self._expected_digest, self._digest
        if expected is not None and actual is not None and expected != actual:
            raise ValueError(
                f"{self.name}: the saved state belongs to a different membership matrix "
                "(public seed, pool size, M or construction changed); refusing to resume"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"membership_digest": self._digest or self._expected_digest}

    def private_state_dict(self) -> dict[str, Any]:
        return {"secret_index": self._secret_index}

    def load_state_dict(self, public: dict[str, Any], private: dict[str, Any]) -> None:
        self._expected_digest = public.get("membership_digest")
        self._check_digest()
        index = private.get("secret_index")
        if index is not None:
            if not 0 <= int(index) < self.subsets:
                raise ValueError(f"{self.name}: secret index {index} out of range")
            self._secret_index = int(index)


def subset_summary(signs: np.ndarray, counts: np.ndarray, all_zero: bool = False) -> dict[str, Any]:
    """Public per-release facts about the M signs (they do not depend on S*). When every
    subset mean is exactly 0 (``all_zero``), the signs agree only by the tie rule: that is
    no agreement, so the release is not unanimous (and says ``all_zero``)."""
    m = signs.shape[0]
    n_plus = int(np.count_nonzero(signs > 0))
    out = {
        "unanimous": n_plus in (0, m) and not all_zero,
        "n_plus": n_plus,
        "frac_plus": n_plus / m,
        "empty_subsets": int(np.count_nonzero(counts == 0)),
    }
    if all_zero:
        out["all_zero"] = True
    return out
