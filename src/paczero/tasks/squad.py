"""SQuAD v1.1 as generative QA with MeZO's prompt, objectives and metric.

Prompt (MeZO ``SQuADv2Template``): ``Title: <title>\\nContext: <context>\\nQuestion:
<question>\\nAnswer:``; the training continuation is `` <first gold answer>\\n``.

Objectives (``task.objective``):
- ``ce``: MeZO's default, teacher-forced cross-entropy on the continuation tokens only,
  here the mean over an example's answer tokens (MeZO averages tokens over the batch;
  PACZero's mechanisms need a per-example loss). Logits only at those positions.
- ``neg-f1``: PACZero's (and MeZO's non-differentiable) objective: greedy generation of up
  to ``max_new_tokens`` tokens, stopping at a newline or EOS, and -F1 per example.

Evaluation always generates greedily and scores F1 / EM (official v1.1 normalisation,
maximum over the gold answers), in length-sorted, left-padded batches with a KV cache.

A prompt longer than ``max_length - max_new_tokens`` loses the start of its *context*
(never the title, question or answer cue), so every prompt has room for a full answer.
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
from paczero.tasks.metrics import exact_match, f1_score
from paczero.tasks.sst2 import _count, _special_prefix

TEMPLATES = ("mezo",)


def render_prompt(example: dict) -> str:
    """MeZO's SQuAD prompt (the question is stripped, title and context kept verbatim)."""
    return _prompt(example["title"], example["context"], example["question"])


def _prompt(title: str, context: str, question: str) -> str:
    return f"Title: {title}\nContext: {context}\nQuestion: {question.strip()}\nAnswer:"


def render_continuation(example: dict) -> str:
    """The training target: the first gold answer and the newline that ends it."""
    answers = example["answers"]
    return f" {answers[0] if answers else ''}\n"


@dataclass
class SquadEncoded:
    """Token ids of each prompt (with leading special tokens) and of its gold continuation."""

    prompts: list[np.ndarray]
    answers: list[np.ndarray]  # `` answer\\n`` tokens (cut to max_new_tokens)
    golds: list[list[str]]  # every gold answer, for F1 / EM
    lengths: np.ndarray  # int64, len(prompts[i])
    truncated: int = 0  # how many contexts were cut from the left

    def __len__(self) -> int:
        return len(self.prompts)


@dataclass
class SquadBatch(TensorBatch):
    """One micro-batch, already on ``device``; ``kind`` says which computation it feeds."""

    kind: str  # "ce": right-padded prompt+answer; "generate": left-padded prompts
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    keep: torch.Tensor | None  # (rows, P) positions whose logits predict answer tokens (ce)
    targets: torch.Tensor | None  # (rows, P) answer token at each kept position (ce)
    target_mask: torch.Tensor | None  # (rows, P) float, 1 where the kept position is real
    golds: list[list[str]]
    n_examples: int


class SquadTask:
    name = "squad"
    metric = "f1"
    metric_mode = "max"

    def __init__(
        self,
        cfg: TaskConfig,
        tokenizer: Any,
        *,
        device: torch.device | str = "cpu",
        max_batch_tokens: int | None = None,
    ):
        """``max_batch_tokens`` caps the padded prompt tokens of a micro-batch."""
        if cfg.template not in TEMPLATES:
            raise UserError(
                f"unknown task.template '{cfg.template}' for squad: choose one of "
                f"{', '.join(TEMPLATES)}"
            )
        if cfg.objective not in ("ce", "neg-f1"):
            raise UserError(f"task.objective '{cfg.objective}' is not one of ce, neg-f1")
        self.cfg = cfg
        self.objective = cfg.objective
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.max_batch_tokens = max_batch_tokens
        if tokenizer.pad_token_id is None:
            raise UserError("the tokenizer has no pad token; load it through paczero.load_model")
        self.pad_id = int(tokenizer.pad_token_id)
        self.special_prefix = _special_prefix(tokenizer)
        self.max_new_tokens = int(cfg.max_new_tokens)
        self.max_prompt = cfg.max_length - self.max_new_tokens  # prompt incl. special tokens
        if self.max_prompt <= len(self.special_prefix) + 16:
            raise UserError(
                f"task.max_length ({cfg.max_length}) leaves no room for a SQuAD prompt after "
                f"task.max_new_tokens ({self.max_new_tokens}); raise task.max_length"
            )
        self.sequences_per_example = 1
        self._stop_ids: list[int] | None = None

    def describe(self) -> str:
        how = (
            "teacher-forced CE on the answer"
            if self.objective == "ce"
            else f"-F1 of greedy generation (<= {self.max_new_tokens} tokens)"
        )
        example = {"title": "<title>", "context": "<context>", "question": "<question>"}
        return f"squad/mezo: {render_prompt(example)!r} -> ' <answer>\\n' ({how})"

    # ------------------------------------------------------------ encoding

    def _plain(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return [list(r) for r in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def encode(self, examples: Sequence[dict]) -> SquadEncoded:
        prompts = [render_prompt(e) for e in examples]
        budget = self.max_prompt - len(self.special_prefix)
        ids, truncated = [], 0
        for example, row in zip(examples, self._plain(prompts), strict=True):
            if len(row) > budget:
                row = self._truncate(example, budget)
                truncated += 1
            ids.append(np.asarray(self.special_prefix + row, dtype=np.int64))
        answers = [
            np.asarray(a[: self.max_new_tokens], dtype=np.int64)
            for a in self._continuations(examples)
        ]
        golds = [list(e["answers"]) for e in examples]
        lengths = np.array([len(r) for r in ids], dtype=np.int64)
        return SquadEncoded(ids, answers, golds, lengths, truncated)

    def _continuations(self, examples: Sequence[dict]) -> list[list[int]]:
        """Tokenise `` answer\\n`` after the answer cue, so merges across it are respected."""
        cue = "\nAnswer:"
        base = self._plain([cue])[0]
        conts = [render_continuation(e) for e in examples]
        out = []
        for cont, joint in zip(conts, self._plain([cue + c for c in conts]), strict=True):
            if joint[: len(base)] == base and len(joint) > len(base):
                out.append(joint[len(base) :])
            else:  # the tokenizer merged across the cue: tokenise the answer alone
                out.append(self._plain([cont])[0])
        return out

    def _truncate(self, example: dict, budget: int) -> list[int]:
        """Drop context tokens from the left until the prompt fits ``budget`` tokens."""
        title, context, question = example["title"], example["context"], example["question"]
        row = self._plain([_prompt(title, context, question)])[0]
        for _ in range(8):
            excess = len(row) - budget
            if excess <= 0:
                return row
            context = self._drop_tokens(context, excess)
            row = self._plain([_prompt(title, context, question)])[0]
            if not context:
                break
        if len(row) > budget:  # the question alone is too long: keep the end (answer cue)
            row = row[len(row) - budget :]
        return row

    def _drop_tokens(self, text: str, n: int) -> str:
        """``text`` without its first ``n`` tokens (by character offsets when available)."""
        if getattr(self.tokenizer, "is_fast", False):
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            offsets = enc["offset_mapping"]
            if n >= len(offsets):
                return ""
            return text[offsets[n][0] :].lstrip()
        ids = self._plain([text])[0]
        return self.tokenizer.decode(ids[n:]).lstrip()

    # ------------------------------------------------------------ batching

    def batches(
        self,
        encoded: SquadEncoded,
        indices: np.ndarray,
        max_sequences: int,
        device: torch.device | str | None = None,
        kind: str | None = None,
    ) -> Iterator[tuple[np.ndarray, SquadBatch]]:
        """Length-sorted micro-batches for the objective (or ``kind``); ``positions`` index
        into ``indices``."""
        kind = kind or ("ce" if self.objective == "ce" else "generate")
        indices = np.asarray(indices, dtype=np.int64)
        target = self.device if device is None else torch.device(device)
        groups = length_sorted_groups(
            encoded.lengths[indices], max_sequences, self.max_batch_tokens
        )
        for positions in groups:
            yield positions, self.collate(encoded, indices[positions], target, kind)

    def collate(
        self, encoded: SquadEncoded, rows: np.ndarray, device: torch.device, kind: str
    ) -> SquadBatch:
        golds = [encoded.golds[i] for i in rows]
        keep = targets = target_mask = None
        if kind == "ce":
            seqs, n_pos = [], max(1, max(len(encoded.answers[i]) for i in rows))
            keep = np.zeros((len(rows), n_pos), dtype=np.int64)
            targets = np.zeros_like(keep)
            target_mask = np.zeros(keep.shape, dtype=np.float32)
            for r, i in enumerate(rows):
                prompt, answer = encoded.prompts[i], encoded.answers[i]
                seqs.append(np.concatenate([prompt, answer]))
                k = len(answer)
                # logits at position p predict token p+1; pad P with the last real position
                keep[r, :] = len(prompt) - 1 + np.minimum(np.arange(n_pos), max(k - 1, 0))
                targets[r, :k] = answer
                target_mask[r, :k] = 1.0
        elif kind == "generate":
            seqs = [encoded.prompts[i] for i in rows]
        else:
            raise ValueError(f"unknown batch kind {kind!r}")
        width = max(len(s) for s in seqs)
        input_ids = np.full((len(seqs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for r, s in enumerate(seqs):
            if kind == "ce":  # right padding keeps real tokens' logits independent of pads
                input_ids[r, : len(s)] = s
                mask[r, : len(s)] = 1
            else:  # left padding: every row's next token comes from the last column
                input_ids[r, width - len(s) :] = s
                mask[r, width - len(s) :] = 1

        def put(a: np.ndarray | None) -> torch.Tensor | None:
            return None if a is None else torch.from_numpy(a).to(device, non_blocking=True)

        tensors = (put(input_ids), put(mask), put(keep), put(targets), put(target_mask))
        return SquadBatch(kind, *tensors, golds, len(rows))

    # ------------------------------------------------------------ scoring

    def ce_losses(self, model: torch.nn.Module, batch: SquadBatch) -> torch.Tensor:
        """Per-example mean token cross-entropy of the gold continuation, float32."""
        batch = self._prepare(model, batch, "ce")
        self._check_length(model, batch.input_ids.shape[1])
        with torch.inference_mode():
            logp = kept_log_probs(model, batch)
            token_lp = logp.gather(-1, batch.targets[..., None]).squeeze(-1)
            count = batch.target_mask.sum(1).clamp_min(1.0)
            loss = -(token_lp * batch.target_mask).sum(1) / count
        return loss.clone()

    def generate(self, model: torch.nn.Module, batch: SquadBatch) -> list[str]:
        """Greedy answers (text before the first newline, stripped), one per row."""
        from transformers import GenerationConfig

        batch = self._prepare(model, batch, "generate")
        width = batch.input_ids.shape[1]
        self._check_length(model, width + self.max_new_tokens)
        config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=self.max_new_tokens,
            eos_token_id=self.stop_ids(),
            pad_token_id=self.pad_id,
            use_cache=True,
        )
        with torch.inference_mode():
            out = model.generate(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                generation_config=config,
            )
        texts = self.tokenizer.batch_decode(out[:, width:].tolist(), skip_special_tokens=True)
        return [t.split("\n", 1)[0].strip() for t in texts]

    def stop_ids(self) -> list[int]:
        """EOS and every token whose text contains a newline (e.g. "\\n", "\\n\\n")."""
        if self._stop_ids is None:
            vocab = len(self.tokenizer)
            texts = self.tokenizer.batch_decode([[i] for i in range(vocab)])
            stops = {i for i, t in enumerate(texts) if "\n" in t}
            if self.tokenizer.eos_token_id is not None:
                stops.add(int(self.tokenizer.eos_token_id))
            self._stop_ids = sorted(stops)
        return self._stop_ids

    def neg_f1_losses(self, model: torch.nn.Module, batch: SquadBatch) -> torch.Tensor:
        texts = self.generate(model, batch)
        f1 = [f1_score(t, g) for t, g in zip(texts, batch.golds, strict=True)]
        return torch.tensor([0.0 - f for f in f1], dtype=torch.float32)  # 0.0, not -0.0

    def losses(self, model: torch.nn.Module, batch: SquadBatch) -> torch.Tensor:
        """Per-example objective, float32, shape (examples,)."""
        if batch.kind == "ce":
            return self.ce_losses(model, batch)
        return self.neg_f1_losses(model, batch)

    def predict(self, model: torch.nn.Module, batch: SquadBatch) -> list[str]:
        return self.generate(model, batch)

    def evaluate(
        self, model: torch.nn.Module, encoded: SquadEncoded, batch_size: int, world: World = SOLO
    ) -> dict:
        """F1 and EM of greedy answers; ``loss`` is the objective's mean (CE needs one more
        teacher-forced pass, -F1 is free). Micro-batches are shared out among ``world``."""
        n = len(encoded)
        if n == 0:
            return {"f1": float("nan"), "exact_match": float("nan"), "loss": float("nan")}
        f1, em = np.full(n, -0.0), np.full(n, -0.0)  # -0.0: see distributed.unowned
        everything = np.arange(n)
        generate = self.batches(encoded, everything, batch_size, kind="generate")
        total = n if world.size == 1 else None
        for positions, batch in progress.track(
            shard(generate, world),
            total=total,
            unit="ex",
            size=_count,
            desc=progress.label("generating answers"),
        ):
            texts = self.generate(model, batch)
            for p, text, golds in zip(positions, texts, batch.golds, strict=True):
                f1[p] = f1_score(text, golds)
                em[p] = exact_match(text, golds)
        f1, em = world.sum_array(f1), world.sum_array(em)
        if self.objective == "ce":
            loss = np.full(n, -0.0)
            ce = self.batches(encoded, everything, batch_size, kind="ce")
            for positions, batch in progress.track(
                shard(ce, world),
                total=total,
                unit="ex",
                size=_count,
                desc=progress.label("scoring answers"),
            ):
                loss[positions] = self.ce_losses(model, batch).double().cpu().numpy()
            mean_loss = float(world.sum_array(loss).mean())
        else:
            mean_loss = -float(f1.mean())
        return {"f1": float(f1.mean()), "exact_match": float(em.mean()), "loss": mean_loss}

    # ------------------------------------------------------------ helpers

    def _prepare(self, model: torch.nn.Module, batch: SquadBatch, kind: str) -> SquadBatch:
        if batch.kind != kind:
            raise ValueError(f"a '{batch.kind}' batch cannot feed the '{kind}' computation")
        if model.training:
            model.eval()
        param = next(model.parameters(), None)
        if param is not None and param.device != batch.device:
            return batch.to(param.device)
        return batch

    def _check_length(self, model: torch.nn.Module, length: int) -> None:
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if isinstance(limit, int) and length > limit:
            raise UserError(
                f"SQuAD sequences reach {length} tokens but the model handles {limit}; set "
                f"task.max_length to at most {limit}"
            )
