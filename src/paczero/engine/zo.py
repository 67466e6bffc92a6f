"""Seeded perturbations and per-example directional derivatives (the SPSA estimator).

z is never stored for the whole model: each trainable tensor's block of z is regenerated
from a dedicated ``torch.Generator`` seeded by (direction seed, tensor index). A step costs
two forward passes per direction and three z generations: +eps, -2eps, then the restore
fused with the update. With ``restore="exact"`` the trainable tensors are snapshotted
instead (cheap for LoRA), so restore is bit-exact and the update is a pure function of
(theta, seed, coefficient).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from paczero.privacy.randomness import tensor_seed

LossFn = Callable[[], torch.Tensor]  # per-example losses (float32) at the current theta


Z_BLOCK = 1 << 22  # z values per generator: bounds the buffer (16 MB float32), balances threads


def _z_block(
    param: torch.Tensor, direction_seed: int, index: int, block: int, reuse: bool = False
) -> torch.Tensor:
    """Block ``block`` of one tensor's flattened z: its own generator, float32.

    With ``reuse`` the values land in this thread's buffer, valid until its next call:
    freeing a fresh 16 MB block per call in several threads leaves glibc arenas holding
    ~100 MB of RSS on a 135 M model.
    """
    size = _block_size(param, block)
    gen = torch.Generator(device=param.device)
    gen.manual_seed(tensor_seed(direction_seed, index, block))
    out = _thread_buffer(size, param.device) if reuse else None
    return torch.randn(size, generator=gen, device=param.device, dtype=torch.float32, out=out)


_buffers = threading.local()


def _thread_buffer(size: int, device: torch.device) -> torch.Tensor:
    buffer = getattr(_buffers, "z", None)
    if buffer is None or buffer.device != device or buffer.numel() < size:
        buffer = _buffers.z = torch.empty(size, device=device)  # at most Z_BLOCK values
    return buffer[:size]


def _block_count(param: torch.Tensor) -> int:
    return -(-param.numel() // Z_BLOCK)


def _block_size(param: torch.Tensor, block: int) -> int:
    return min(Z_BLOCK, param.numel() - block * Z_BLOCK)


def direction_block(param: torch.Tensor, direction_seed: int, index: int) -> torch.Tensor:
    """The whole z of one tensor: standard normal, float32, on the tensor's device."""
    blocks = [_z_block(param, direction_seed, index, b) for b in range(_block_count(param))]
    flat = torch.cat(blocks) if blocks else torch.empty(0, device=param.device)
    return flat.view(param.shape)


def add_direction(params: Sequence[torch.Tensor], direction_seed: int, scale: float) -> None:
    """theta += scale * z(seed), one block of at most ``Z_BLOCK`` values at a time.

    Generating z on a CPU runs on one core and costs ~10x the add, so large CPU models
    perturb blocks in parallel threads (torch releases the GIL inside ops). Each block has
    its own generator, so the result is bit-identical in any order, and no buffer is ever
    the size of a whole embedding matrix.
    """

    def perturb(item: tuple[int, int, int]) -> None:
        index, block, _ = item
        with torch.no_grad():  # grad mode is per thread
            param = params[index]
            if block == WHOLE:
                z = direction_block(param, direction_seed, index)
                param.add_(z.to(param.dtype), alpha=scale)
            else:
                z = _z_block(param, direction_seed, index, block, reuse=True)
                start = block * Z_BLOCK
                param.view(-1)[start : start + z.numel()].add_(z.to(param.dtype), alpha=scale)

    items = _work_items(params)
    workers = _perturbation_workers(params)
    if workers is None:
        for item in items:
            perturb(item)
    else:  # largest first, so a long block does not start last
        list(workers.map(perturb, sorted(items, key=lambda item: -item[2])))


WHOLE = -1  # a work item covering a whole (non-contiguous) tensor


def _work_items(params: Sequence[torch.Tensor]) -> list[tuple[int, int, int]]:
    """(tensor index, block, values): contiguous tensors by block, others whole."""
    items = []
    for index, param in enumerate(params):
        if param.is_contiguous():
            items += [(index, b, _block_size(param, b)) for b in range(_block_count(param))]
        else:  # rare: no flat view to add a block into
            items.append((index, WHOLE, param.numel()))
    return items


PARALLEL_MIN_NUMEL = 1 << 22  # below ~4 M trainable values (LoRA) threads save nothing
_workers: dict[int, ThreadPoolExecutor] = {}  # one pool per thread count, made once


def _perturbation_workers(params: Sequence[torch.Tensor]) -> ThreadPoolExecutor | None:
    """A thread pool sized to torch's CPU threads, or None where one thread is best."""
    threads = torch.get_num_threads()
    if (
        threads < 2
        or len(params) < 2
        or any(p.device.type != "cpu" for p in params)
        or sum(p.numel() for p in params) < PARALLEL_MIN_NUMEL
    ):
        return None
    if threads not in _workers:
        _workers[threads] = ThreadPoolExecutor(threads, thread_name_prefix="paczero-z")
    return _workers[threads]


@dataclass
class Estimate:
    derivatives: np.ndarray  # g_i = (l_i(theta + eps z) - l_i(theta - eps z)) / 2 eps, float64
    loss: float  # mean of (l+ + l-)/2: the loss estimate, free of an extra forward pass


class ZOEstimator:
    """Two forward passes per direction; restore fused with the update by default."""

    def __init__(self, params: Sequence[torch.Tensor], eps: float, restore: str = "fused"):
        if restore not in ("fused", "exact"):
            raise ValueError(f"restore must be 'fused' or 'exact', got {restore!r}")
        self.params = list(params)
        self.eps = float(eps)
        self.restore = restore
        self._pending: int | None = None  # direction left at theta - eps z (fused mode)

    def estimate(
        self, direction_seed: int, losses: LossFn, defer_restore: bool = False
    ) -> Estimate:
        """Per-example derivatives along one direction.

        With ``defer_restore`` (fused mode) theta is left at theta - eps z and the next
        ``update`` folds the restore into its own z pass.
        """
        if self._pending is not None:
            raise RuntimeError("a deferred restore is pending; call update() first")
        snapshot = self._snapshot()
        add_direction(self.params, direction_seed, self.eps)
        loss_plus = losses().to(torch.float64)
        add_direction(self.params, direction_seed, -2.0 * self.eps)
        loss_minus = losses().to(torch.float64)
        self._restore(direction_seed, snapshot, defer_restore)
        g = ((loss_plus - loss_minus) / (2.0 * self.eps)).cpu().numpy()
        return Estimate(derivatives=g, loss=float(((loss_plus + loss_minus) / 2).mean()))

    def update(self, steps: Sequence[tuple[int, float]]) -> None:
        """theta -= a_k z_k for each (direction seed, a_k), folding in a deferred restore."""
        pending = self._pending
        self._pending = None
        folded = False
        for seed, amount in steps:
            if seed == pending and not folded:
                add_direction(self.params, seed, self.eps - amount)
                folded = True
            elif amount != 0.0:
                add_direction(self.params, seed, -amount)
        if pending is not None and not folded:
            add_direction(self.params, pending, self.eps)

    def replay(self, seeds: Sequence[int], amounts: Sequence[float]) -> None:
        """Redo one logged step without a forward pass: the same float operations, in order.

        Exact restores leave theta untouched, so only the updates are redone; fused
        restores round, so their perturbations are redone too for a bit-identical result.
        """
        if self.restore == "fused":
            for k, seed in enumerate(seeds):
                add_direction(self.params, seed, self.eps)
                add_direction(self.params, seed, -2.0 * self.eps)
                self._restore(seed, None, defer=k == len(seeds) - 1)
        self.update(list(zip(seeds, amounts, strict=True)))

    def _snapshot(self) -> list[torch.Tensor] | None:
        if self.restore == "exact":
            return [p.detach().clone() for p in self.params]
        return None

    @torch.no_grad()
    def _restore(self, seed: int, snapshot: list[torch.Tensor] | None, defer: bool) -> None:
        if snapshot is not None:
            for param, saved in zip(self.params, snapshot, strict=True):
                param.copy_(saved)
        elif defer:
            self._pending = seed
        else:
            add_direction(self.params, seed, self.eps)
