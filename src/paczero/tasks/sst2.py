"""SST-2 as classification by label-word likelihood (MeZO's objective).

score_c = mean over option c's tokens of log p(token | prefix); the per-example loss is
the cross-entropy -log softmax(score)[label], and the prediction is argmax score. When
both label words are one token each, one sequence per example suffices: both scores
come from the same next-token distribution at the last prompt position.

Prompts are tokenised once (``encode``); ``batches`` pads length-sorted micro-batches on
the right, so causal attention keeps every real token's logits independent of padding.
Logits are computed only where the loss reads them (``logits_to_keep``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from paczero import progress
from paczero.config import TaskConfig
from paczero.distributed import SOLO, World, shard
from paczero.errors import UserError
from paczero.tasks.batch import TensorBatch, kept_log_probs, length_sorted_groups


@dataclass(frozen=True)
class Template:
    name: str
    prefix: str  # text before the sentence
    suffix: str  # text after the sentence; the option follows it directly
    options: tuple[str, ...]  # label word for label 0, 1, ...

    def render(self, sentence: str) -> str:
        return f"{self.prefix}{sentence.strip()}{self.suffix}"

    def describe(self) -> str:
        opts = " | ".join(repr(o) for o in self.options)
        return f"{self.render('<sentence>')!r} -> {opts}"


TEMPLATES = {
    "mezo": Template("mezo", "", " It was", (" terrible", " great")),
    "review": Template("review", "Review: ", "\nSentiment:", (" negative", " positive")),
}


@dataclass
class EncodedSet:
    """Token ids of each prompt (with the tokenizer's leading special tokens), no padding."""

    ids: list[np.ndarray]
    labels: np.ndarray  # int64, one per example
    lengths: np.ndarray  # int64, len(ids[i])
    truncated: int = 0  # how many prompts were cut from the left

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Batch(TensorBatch):
    """Padded tensors of one micro-batch, already on ``device``; opaque to the engine."""

    input_ids: torch.Tensor  # (rows, length)
    attention_mask: torch.Tensor  # (rows, length)
    keep: torch.Tensor  # (rows, P) positions whose next-token logits the loss needs
    targets: torch.Tensor | None  # (rows, P) option token at each kept position (multi-token)
    target_mask: torch.Tensor | None  # (rows, P) float, 1 where the kept position is real
    labels: torch.Tensor  # (examples,)
    n_examples: int


class SST2Task:
    name = "sst2"
    metric = "accuracy"
    metric_mode = "max"

    def __init__(
        self,
        cfg: TaskConfig,
        tokenizer: Any,
        *,
        device: torch.device | str = "cpu",
        single_token: bool | None = None,
        max_batch_tokens: int | None = None,
    ):
        """``single_token=False`` forces one sequence per option (for tests and checks);
        ``max_batch_tokens`` caps the padded tokens of a micro-batch."""
        if cfg.template not in TEMPLATES:
            raise UserError(
                f"unknown task.template '{cfg.template}' for sst2: choose one of "
                f"{', '.join(TEMPLATES)}"
            )
        self.cfg = cfg
        self.template = TEMPLATES[cfg.template]
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.max_batch_tokens = max_batch_tokens
        if tokenizer.pad_token_id is None:
            raise UserError("the tokenizer has no pad token; load it through paczero.load_model")
        self.pad_id = int(tokenizer.pad_token_id)
        self.special_prefix = _special_prefix(tokenizer)
        self.option_ids = self._option_ids()
        fits_one = all(len(o) == 1 for o in self.option_ids)
        fits_one = fits_one and len({o[0] for o in self.option_ids}) == len(self.option_ids)
        if single_token and not fits_one:
            raise UserError(
                f"task template '{cfg.template}': the label words are not single distinct "
                "tokens for this tokenizer; leave single_token unset"
            )
        self.single_token = fits_one if single_token is None else bool(single_token)
        self.n_options = len(self.option_ids)
        self.sequences_per_example = 1 if self.single_token else self.n_options
        longest_option = 0 if self.single_token else max(len(o) for o in self.option_ids)
        self.max_prompt = cfg.max_length - longest_option
        if self.max_prompt <= len(self.special_prefix):
            raise UserError(f"task.max_length ({cfg.max_length}) is too short for the label words")

    def _option_ids(self) -> list[list[int]]:
        """Tokenise prompt+option jointly, so merges across the boundary are respected."""
        prompt = self.template.render("x")
        base = self._plain(prompt)
        out = []
        for option in self.template.options:
            joint = self._plain(prompt + option)
            if joint[: len(base)] != base or len(joint) == len(base):
                raise UserError(
                    f"task.template '{self.template.name}': the tokenizer merges the label word "
                    f"{option!r} into the prompt; choose another template"
                )
            out.append(joint[len(base) :])
        return out

    def _plain(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def describe(self) -> str:
        mode = (
            "single-token label words, 1 sequence per example"
            if self.single_token
            else f"1 sequence per option ({self.n_options})"
        )
        return f"sst2/{self.template.name}: {self.template.describe()} ({mode})"

    # ------------------------------------------------------------ encoding

    def render(self, example: dict) -> str:
        return self.template.render(example["sentence"])

    def encode(self, examples: Sequence[dict]) -> EncodedSet:
        prompts = [self.render(e) for e in examples]
        labels = np.array([int(e["label"]) for e in examples], dtype=np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= self.n_options):
            raise UserError(f"sst2 labels must be in 0..{self.n_options - 1}")
        tokenised = (
            self.tokenizer(prompts, add_special_tokens=False)["input_ids"] if prompts else []
        )
        budget = self.max_prompt - len(self.special_prefix)
        ids, truncated = [], 0
        for row in tokenised:
            if len(row) > budget:  # keep the end: the template's cue words sit there
                row = row[len(row) - budget :]
                truncated += 1
            ids.append(np.asarray(self.special_prefix + list(row), dtype=np.int64))
        lengths = np.array([len(r) for r in ids], dtype=np.int64)
        return EncodedSet(ids, labels, lengths, truncated)

    # ------------------------------------------------------------ batching

    def batches(
        self,
        encoded: EncodedSet,
        indices: np.ndarray,
        max_sequences: int,
        device: torch.device | str | None = None,
    ) -> Iterator[tuple[np.ndarray, Batch]]:
        """Length-sorted micro-batches; ``positions`` index into ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        target = self.device if device is None else torch.device(device)
        groups = length_sorted_groups(
            encoded.lengths[indices],
            max_sequences,
            self.max_batch_tokens,
            rows_per_item=self.sequences_per_example,
        )
        for positions in groups:
            yield positions, self.collate(encoded, indices[positions], target)

    def collate(self, encoded: EncodedSet, rows: np.ndarray, device: torch.device) -> Batch:
        seqs = [encoded.ids[i] for i in rows]
        labels = torch.from_numpy(encoded.labels[rows].copy())
        if self.single_token:
            keep = np.array([[len(s) - 1] for s in seqs], dtype=np.int64)
            targets = target_mask = None
        else:
            n_pos = max(len(o) for o in self.option_ids)
            keep = np.zeros((len(seqs) * self.n_options, n_pos), dtype=np.int64)
            targets = np.zeros_like(keep)
            target_mask = np.zeros(keep.shape, dtype=np.float32)
            full = []
            for e, prompt in enumerate(seqs):
                for c, option in enumerate(self.option_ids):
                    r = e * self.n_options + c
                    full.append(np.concatenate([prompt, np.asarray(option, dtype=np.int64)]))
                    k = len(option)
                    # logits at position p predict token p+1
                    keep[r, :k] = np.arange(len(prompt) - 1, len(prompt) - 1 + k)
                    keep[r, k:] = keep[r, k - 1]
                    targets[r, :k] = option
                    target_mask[r, :k] = 1.0
            seqs = full
        width = max(len(s) for s in seqs)
        input_ids = np.full((len(seqs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for r, s in enumerate(seqs):
            input_ids[r, : len(s)] = s
            mask[r, : len(s)] = 1

        def put(a: np.ndarray | None) -> torch.Tensor | None:
            return None if a is None else torch.from_numpy(a).to(device, non_blocking=True)

        return Batch(
            put(input_ids),
            put(mask),
            put(keep),
            put(targets),
            put(target_mask),
            labels.to(device),
            len(rows),
        )

    # ------------------------------------------------------------ scoring

    def scores(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """(examples, options) float32 length-normalised log-likelihoods of the label words."""
        if model.training:
            model.eval()
        batch = _on_model_device(model, batch)
        with torch.inference_mode():
            logp = kept_log_probs(model, batch)  # (rows, P, vocab)
            if self.single_token:
                options = torch.tensor([o[0] for o in self.option_ids], device=logp.device)
                scores = logp[:, 0, options]
            else:
                token_lp = logp.gather(-1, batch.targets[..., None]).squeeze(-1)
                mean = (token_lp * batch.target_mask).sum(1) / batch.target_mask.sum(1)
                scores = mean.view(batch.n_examples, self.n_options)
        return scores.clone()  # a normal tensor: callers may update it in place

    def losses(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """Per-example cross-entropy over the options, float32, shape (examples,)."""
        scores = self.scores(model, batch)
        return _cross_entropy(scores, batch.labels.to(scores.device))

    def predict(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return self.scores(model, batch).argmax(dim=-1)

    def evaluate(
        self, model: torch.nn.Module, encoded: EncodedSet, batch_size: int, world: World = SOLO
    ) -> dict:
        """Accuracy and mean loss over every row, from one forward pass per micro-batch
        (shared out among the ranks of ``world``)."""
        n = len(encoded)
        if n == 0:
            return {"accuracy": float("nan"), "loss": float("nan")}
        loss, correct = np.full(n, -0.0), np.full(n, -0.0)  # -0.0: see distributed.unowned
        batches = shard(self.batches(encoded, np.arange(n), batch_size), world)
        for positions, batch in progress.track(
            batches, total=n if world.size == 1 else None, unit="ex", size=_count
        ):
            scores = self.scores(model, batch)
            labels = batch.labels.to(scores.device)
            loss[positions] = _cross_entropy(scores, labels).double().cpu().numpy()
            correct[positions] = (scores.argmax(-1) == labels).cpu().numpy()
        loss, correct = world.sum_array(loss), world.sum_array(correct)
        return {"accuracy": float(correct.mean()), "loss": float(loss.mean())}


def _count(item: tuple) -> int:
    """Examples in one ``(positions, batch)`` work item (for progress)."""
    return len(item[0])


def _cross_entropy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return -torch.log_softmax(scores, dim=-1).gather(1, labels[:, None]).squeeze(1)


def _on_model_device(model: torch.nn.Module, batch: Batch) -> Batch:
    param = next(model.parameters(), None)
    if param is not None and param.device != batch.device:
        return batch.to(param.device)
    return batch


def _special_prefix(tokenizer: Any) -> list[int]:
    """The special tokens the tokenizer puts before text (BOS for OPT/Llama, none for SmolLM2)."""
    plain = list(tokenizer("x", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("x")["input_ids"])
    for k in range(len(full) - len(plain) + 1):
        if full[k : k + len(plain)] == plain:
            return full[:k]
    return []
