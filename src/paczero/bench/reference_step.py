"""A PACZero step written the way the published code does it: the yardstick of `paczero bench`.

What makes it slow, on purpose (algorithms.md 6.2, 15, 16):
- one sequence per label word (prompt + " terrible", prompt + " great"), scored by the mean
  log-prob of the option tokens from full-vocabulary logits at every position;
- the whole pool padded to its longest sequence, then sliced into micro-batches;
- four z generations per step (+eps, -2eps, +eps restore, then the update), z drawn from
  the global RNG re-seeded with the step's seed, as MeZO does;
- a third forward pass over the pool after the update, to log the training loss.

The release is PACZero-ZPL's (all M subset signs from one product, common sign or a coin),
so the mechanism costs the same on both sides and the ratio measures the engineering.
Training never uses it; it ships in the package so that an installed bench can time it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class ReferenceStep:
    """``step(seed)`` runs one reference-style step in place on ``params``; returns its loss."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        prompts: Sequence[np.ndarray],
        labels: np.ndarray,
        option_ids: Sequence[Sequence[int]],
        params: Sequence[torch.Tensor],
        *,
        eps: float = 1e-3,
        lr: float = 1e-6,
        micro_batch: int = 64,
        subsets: int = 16,
        seed: int = 0,
    ):
        self.model = model
        self.params = list(params)
        self.eps, self.lr = float(eps), float(lr)
        self.micro_batch = int(micro_batch)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.n_options = len(option_ids)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        rows, spans = [], []
        for prompt in prompts:
            for option in option_ids:
                rows.append(np.concatenate([np.asarray(prompt), np.asarray(option)]))
                spans.append((len(prompt), len(option)))
        width = max(len(r) for r in rows)  # the whole pool padded to its longest row
        self.input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        self.attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        self.option_mask = torch.zeros((len(rows), width), dtype=torch.float32)
        for r, ids in enumerate(rows):
            self.input_ids[r, : len(ids)] = torch.as_tensor(ids)
            self.attention_mask[r, : len(ids)] = 1
            start, length = spans[r]
            self.option_mask[r, start : start + length] = 1.0
        rng = np.random.default_rng(seed)
        keys = rng.random((len(prompts), subsets))
        self.membership = np.zeros((len(prompts), subsets), dtype=bool)
        order = np.argsort(keys, axis=1)[:, : subsets // 2]
        np.put_along_axis(self.membership, order, True, axis=1)
        self.coin = np.random.default_rng(seed + 1)
        self.padded_tokens = int(self.input_ids.numel())

    @torch.no_grad()
    def perturb(self, seed: int, scale: float) -> None:
        torch.manual_seed(seed)
        for p in self.params:
            z = torch.normal(0.0, 1.0, size=p.shape, device=p.device, dtype=p.dtype)
            p.add_(z, alpha=scale)

    @torch.no_grad()
    def losses(self) -> torch.Tensor:
        device = next(self.model.parameters()).device
        out = []
        for start in range(0, self.input_ids.shape[0], self.micro_batch):
            ids = self.input_ids[start : start + self.micro_batch].to(device)
            mask = self.attention_mask[start : start + self.micro_batch].to(device)
            logits = self.model(input_ids=ids, attention_mask=mask).logits  # (rows, L, vocab)
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            token_lp = logp.gather(-1, ids[:, 1:, None]).squeeze(-1).cpu()
            opt = self.option_mask[start : start + self.micro_batch, 1:]
            out.append((token_lp * opt).sum(1) / opt.sum(1))
        scores = torch.cat(out).view(-1, self.n_options)
        return -torch.log_softmax(scores, dim=-1).gather(1, self.labels[:, None]).squeeze(1)

    def step(self, seed: int) -> float:
        self.perturb(seed, self.eps)
        loss_plus = self.losses().double()
        self.perturb(seed, -2.0 * self.eps)
        loss_minus = self.losses().double()
        self.perturb(seed, self.eps)  # restore
        g = ((loss_plus - loss_minus) / (2 * self.eps)).numpy()
        counts = np.maximum(self.membership.sum(0), 1)
        signs = np.where(self.membership.T @ g / counts >= 0, 1.0, -1.0)
        coeff = signs[0] if np.all(signs == signs[0]) else self.coin.choice([-1.0, 1.0])
        torch.manual_seed(seed)  # the update regenerates z a fourth time
        with torch.no_grad():
            for p in self.params:
                z = torch.normal(0.0, 1.0, size=p.shape, device=p.device, dtype=p.dtype)
                p.add_(z, alpha=-self.lr * coeff)
        return float(self.losses().mean())  # the logging pass at the new theta


def from_task(task, model, encoded, params, **options) -> ReferenceStep:
    """The reference step over an encoded SST-2 pool (the task's prompts and label words)."""
    return ReferenceStep(
        model, task.tokenizer, encoded.ids, encoded.labels, task.option_ids, params, **options
    )
