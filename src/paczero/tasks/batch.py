"""What every task's micro-batch shares: padded tensors that move to a device together."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from dataclasses import fields, replace

import numpy as np
import torch


@functools.cache
def _row_keep() -> bool:
    """transformers >= 5: logits_to_keep accepts per-row positions (a 2-D index tensor).
    Asked on first use: importing transformers' modelling code takes seconds."""
    try:
        from transformers.modeling_utils import slice_logits_to_keep  # noqa: F401
    except ImportError:  # pragma: no cover - older transformers: full logits, then gather
        return False
    return True


_GRAD = threading.local()  # per thread, like torch's own grad mode


@contextlib.contextmanager
def differentiable() -> Iterator[None]:
    """Task losses computed inside keep their autograd graph (the first-order baselines
    backpropagate through them); everywhere else scoring runs under inference mode."""
    before = getattr(_GRAD, "on", False)
    _GRAD.on = True
    try:
        yield
    finally:
        _GRAD.on = before


def scoring() -> contextlib.AbstractContextManager:
    """Inference mode, unless inside ``differentiable()``."""
    if getattr(_GRAD, "on", False):
        return contextlib.nullcontext()
    return torch.inference_mode()


class TensorBatch:
    """Mixin for task batch dataclasses with an ``input_ids`` field."""

    input_ids: torch.Tensor

    @property
    def device(self) -> torch.device:
        return self.input_ids.device

    def to(self, device: torch.device | str):
        moved = {
            f.name: value.to(device, non_blocking=True)
            for f in fields(self)
            if isinstance(value := getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)


def kept_log_probs(model: torch.nn.Module, batch: TensorBatch) -> torch.Tensor:
    """Log-probabilities (rows, P, vocab) at the ``batch.keep`` positions only.

    The LM head runs on those positions alone; the softmax is float32 for half-precision
    models and float64 for float64 ones. Call under ``torch.inference_mode()``.
    """
    if _row_keep():
        logits = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            logits_to_keep=batch.keep,
        ).logits
    else:  # pragma: no cover - older transformers
        full = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        logits = torch.take_along_dim(full, batch.keep[..., None], dim=1)
    wide = torch.promote_types(logits.dtype, torch.float32)
    return torch.log_softmax(logits.to(wide), dim=-1)


def length_sorted_groups(
    lengths: np.ndarray, max_rows: int, max_tokens: int | None = None, rows_per_item: int = 1
) -> Iterator[np.ndarray]:
    """Positions into ``lengths``, shortest first, cut into micro-batches.

    A micro-batch is padded to its longest sequence, so one long sentence among short ones
    multiplies the work. A batch holds at most ``max_rows`` sequences and, when
    ``max_tokens`` is set, at most that many padded tokens (sequences x longest length);
    a single item longer than the budget still gets a batch of its own.
    """
    per_batch = max(1, int(max_rows) // rows_per_item)
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and end - start < per_batch:
            padded = (end + 1 - start) * rows_per_item * int(lengths[order[end]])
            if max_tokens is not None and padded > max_tokens:
                break
            end += 1
        yield order[start:end]
        start = end
