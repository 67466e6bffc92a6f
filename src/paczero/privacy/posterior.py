"""The attacker's posterior over the M candidate subsets, in log space (docs/algorithms.md 5.3).

Pure functions on numpy arrays: the PACZero-MI mechanism keeps its posterior with them, and
anyone holding only the public release log can rebuild the same posterior with them.
"""

from __future__ import annotations

import math

import numpy as np


def logsumexp(x: np.ndarray, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
    """log sum exp x with -inf entries allowed (all -inf gives -inf); much cheaper per call
    than scipy's, which matters at one call per release."""
    x = np.asarray(x, dtype=np.float64)
    top = np.max(x, axis=axis, keepdims=True)
    shift = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - shift), axis=axis, keepdims=True)) + shift
    return out if keepdims else np.squeeze(out, axis=axis)


def log_normalize(log_w: np.ndarray) -> np.ndarray:
    """Normalise log weights along the last axis (-inf entries stay -inf)."""
    log_w = np.asarray(log_w, dtype=np.float64)
    return log_w - logsumexp(log_w, axis=-1, keepdims=True)


def uniform_log_posterior(m: int) -> np.ndarray:
    """The prior: S* uniform over the M candidates."""
    return np.full(m, -math.log(m))


def sign_log_masses(log_post: np.ndarray, signs: np.ndarray) -> tuple[float, float]:
    """log P(s_{S*} = +1) and log P(s_{S*} = -1), each summed on its own so a tiny side keeps
    its relative precision (the noiseless-release charge H_b(q) depends on it), not
    1 - (1 - q)."""
    top = float(np.max(log_post))
    weights = np.exp(log_post - top)
    plus = np.asarray(signs) > 0
    wp, wm = float(weights[plus].sum()), float(weights[~plus].sum())
    lz = math.log(wp + wm)  # >= 0: the top candidate alone weighs 1
    return _log(wp) - lz, _log(wm) - lz


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def gaussian_update(
    log_post: np.ndarray, signs: np.ndarray, r: float | np.ndarray, sigma: float
) -> np.ndarray:
    """Posterior after a public R = s_{S*} + sigma * xi: pi_j *= N(R; s_j, sigma^2).

    Since s_j^2 = 1, log N(R; s_j, sigma^2) = s_j R / sigma^2 + const, which avoids the
    cancellation of (R - s_j)^2 at large sigma. ``r`` may be an array (a batch of releases).
    """
    r = np.asarray(r, dtype=np.float64)[..., None]
    return log_normalize(log_post + signs * r / sigma**2)


def bsc_update(
    log_post: np.ndarray, signs: np.ndarray, y: int | np.ndarray, rho: float
) -> np.ndarray:
    """Posterior after the bit Y = s_{S*} flipped with probability rho (only Y is public)."""
    y = np.asarray(y)[..., None]
    loglik = np.where(signs == y, math.log1p(-rho), math.log(rho) if rho > 0 else -math.inf)
    return log_normalize(log_post + loglik)


def exact_update(log_post: np.ndarray, signs: np.ndarray, y: int) -> np.ndarray:
    """Posterior after the secret sign itself is released: candidates with s_j != y drop out."""
    return log_normalize(np.where(np.asarray(signs) == y, log_post, -math.inf))


__all__ = [
    "bsc_update",
    "exact_update",
    "gaussian_update",
    "log_normalize",
    "logsumexp",
    "sign_log_masses",
    "uniform_log_posterior",
]
