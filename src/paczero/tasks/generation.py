"""Generation: a prompt template over the row's fields, and a completion to produce.

The training continuation is ``target_delimiter + completion + stop[0]`` (SQuAD: `` <first
gold answer>\\n``), tokenised after the prompt's cue (the text after its last field), so its
tokens match those of the full text. The gold answers are the completion, or the list of
acceptable answers of ``task.answers_field``.

Objectives (``task.objective``):
- ``ce``: teacher-forced cross-entropy on the continuation tokens only, the mean over an
  example's tokens (PACZero's mechanisms need a per-example loss). Logits only there.
- ``neg-f1``: greedy generation of up to ``max_new_tokens`` tokens, stopping at a stop
  string or EOS, and -F1 per example (non-differentiable; forward passes only need none).

Evaluation generates greedily and scores token F1 and exact match (SQuAD v1.1
normalisation, the maximum over the gold answers), in length-sorted, left-padded batches
with a KV cache; ``loss`` is the objective's mean, ``completion_loss`` the mean CE.

A prompt longer than ``max_length - max_new_tokens`` loses the start of
``task.truncate_field`` (SQuAD: the context; never the title, question or cue), or else
the start of the prompt, so every prompt has room for a full answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from paczero.distributed import SOLO, World
from paczero.errors import UserError
from paczero.tasks.base import (
    Prompt,
    TaskBase,
    evaluated,
    on_device,
    on_model_device,
    padded,
    plain_ids,
    prompt_fields,
)
from paczero.tasks.batch import TensorBatch, kept_log_probs, length_sorted_groups, scoring
from paczero.tasks.metrics import exact_match, f1_score
from paczero.tasks.own_data import RowSchema, answer_list, cell_text

if TYPE_CHECKING:
    from paczero.tasks.options import TaskConfig


@dataclass(frozen=True)
class GenerationSpec:
    name: str  # "squad/mezo", or the task's own name
    title: str  # how errors name the task ("SQuAD")
    prompt: Prompt
    completion_field: str | None  # the training target
    answers_field: str | None  # every acceptable answer (the first is the target if no
    # completion field)
    delimiter: str = " "
    stop: tuple[str, ...] = ("\n",)
    truncate_field: str | None = None  # cut from its start when a prompt is too long
    metrics: tuple[str, ...] = ("f1", "exact_match", "completion_loss")

    def golds(self, row: dict) -> list[str]:
        if self.answers_field is not None:
            return answer_list(row[self.answers_field])
        return [str(row[self.completion_field])]

    def target(self, row: dict) -> str:
        if self.completion_field is not None:
            return str(row[self.completion_field])
        golds = self.golds(row)
        return golds[0] if golds else ""

    def continuation(self, row: dict) -> str:
        """What the model is trained to write after the prompt."""
        return f"{self.delimiter}{self.target(row)}{self.stop[0] if self.stop else ''}"

    def cut(self, text: str) -> str:
        """A generation up to its first stop string, stripped."""
        ends = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        return (text[: min(ends)] if ends else text).strip()


@dataclass
class GenerationEncoded:
    """Token ids of each prompt (with leading special tokens) and of its gold continuation."""

    prompts: list[np.ndarray]
    answers: list[np.ndarray]  # continuation tokens (cut to max_new_tokens)
    golds: list[list[str]]  # every gold answer, for F1 / EM
    lengths: np.ndarray  # int64, len(prompts[i])
    truncated: int = 0  # how many prompts were cut

    def __len__(self) -> int:
        return len(self.prompts)


@dataclass
class GenerationBatch(TensorBatch):
    """One micro-batch, already on ``device``; ``kind`` says which computation it feeds."""

    kind: str  # "ce": right-padded prompt+answer; "generate": left-padded prompts
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    keep: torch.Tensor | None  # (rows, P) positions whose logits predict answer tokens (ce)
    targets: torch.Tensor | None  # (rows, P) answer token at each kept position (ce)
    target_mask: torch.Tensor | None  # (rows, P) float, 1 where the kept position is real
    golds: list[list[str]]
    n_examples: int


class GenerationTask(TaskBase):
    kind = "generation"
    METRICS = ("f1", "exact_match", "completion_loss")
    SELECTABLE = ("f1", "exact_match")  # metrics that may pick the dev-best model
    OBJECTIVES = ("ce", "neg-f1")
    default_max_length = 512
    min_prompt_tokens = 32
    FOREIGN = ("label_field", "label_words")

    def __init__(
        self,
        cfg: TaskConfig,
        tokenizer: Any,
        *,
        spec: GenerationSpec,
        device: torch.device | str = "cpu",
        max_batch_tokens: int | None = None,
    ):
        """``max_batch_tokens`` caps the padded prompt tokens of a micro-batch."""
        super().__init__(
            cfg, tokenizer, spec=spec, device=device, max_batch_tokens=max_batch_tokens
        )
        self.objective = cfg.objective
        self.max_new_tokens = int(cfg.max_new_tokens)
        self.max_prompt = cfg.max_length - self.max_new_tokens  # prompt incl. special tokens
        if self.max_prompt <= len(self.special_prefix) + 16:
            raise UserError(
                f"task.max_length ({cfg.max_length}) leaves no room for a {spec.title} prompt "
                f"after task.max_new_tokens ({self.max_new_tokens}); raise task.max_length"
            )
        self.sequences_per_example = 1
        self._stop_ids: list[int] | None = None

    # ------------------------------------------------------------ the type's declarations

    @classmethod
    def check_config(cls, cfg: TaskConfig) -> None:
        """ValueError naming the key if ``cfg`` is not a generation task of one's own."""
        if not cfg.prompt:
            raise ValueError("a generation task needs task.prompt, e.g. 'Q: {question}\\nA:'")
        if not (cfg.completion_field or cfg.answers_field):
            raise ValueError(
                "a generation task needs task.completion_field (the text to produce) or "
                "task.answers_field (a list of acceptable answers)"
            )
        if cfg.truncate_field and cfg.truncate_field not in prompt_fields(cfg.prompt):
            raise ValueError(
                f"task.truncate_field '{cfg.truncate_field}' is not a field of task.prompt"
            )

    @classmethod
    def spec_from(cls, cfg: TaskConfig) -> GenerationSpec:
        """The spec of a generation task of one's own."""
        return GenerationSpec(
            name=cfg.name,
            title=f"task '{cfg.name}'",
            prompt=Prompt(cfg.prompt or ""),
            completion_field=cfg.completion_field,
            answers_field=cfg.answers_field,
            delimiter=cfg.target_delimiter,
            stop=tuple(cfg.stop),
            truncate_field=cfg.truncate_field,
            metrics=tuple(cfg.metrics or cls.METRICS),
        )

    @classmethod
    def row_schema(cls, spec: GenerationSpec) -> RowSchema:
        """The prompt's fields and the completion or answers column, each row checked."""
        columns = {name: "a field of task.prompt" for name in prompt_fields(spec.prompt.text)}
        if spec.completion_field is not None:
            columns[spec.completion_field] = "task.completion_field"
        if spec.answers_field is not None:
            columns[spec.answers_field] = "task.answers_field"

        def check(row: dict, where: str) -> dict:
            for name in columns:
                if name == spec.answers_field:
                    answers = answer_list(row[name], f"{where}: column '{name}'")
                    if not answers:
                        raise UserError(f"{where}: column '{name}' has no answer")
                else:
                    cell_text(row[name], f"{where}: column '{name}'")
            target = spec.target(row)
            for stop in spec.stop:
                if stop in target:
                    raise UserError(
                        f"{where}: the completion {target[:40]!r} holds the stop string "
                        f"{stop!r} (task.stop), where generation would end; set task.stop to "
                        "strings the completions do not hold, or []"
                    )
            return {name: row[name] for name in columns}

        return RowSchema(columns, check)

    def describe(self) -> str:
        how = (
            "teacher-forced CE on the answer"
            if self.objective == "ce"
            else f"-F1 of greedy generation (<= {self.max_new_tokens} tokens)"
        )
        spec = self.spec
        target = f"{spec.delimiter}<answer>{spec.stop[0] if spec.stop else ''}"
        return f"{spec.name}: {spec.prompt.placeholder()!r} -> {target!r} ({how})"

    # ------------------------------------------------------------ encoding

    def _plain(self, texts: list[str]) -> list[list[int]]:
        return plain_ids(self.tokenizer, texts)

    def encode(self, examples: Sequence[dict], labelled: bool = True) -> GenerationEncoded:
        """Token ids of each row's prompt and gold continuation; ``labelled=False`` for rows
        to predict (no completion or answers column: no continuation, no golds)."""
        prompts = [self.render(e) for e in examples]
        budget = self.max_prompt - len(self.special_prefix)
        ids, truncated = [], 0
        for example, row in zip(examples, self._plain(prompts), strict=True):
            if len(row) > budget:
                row = self._truncate(example, row, budget)
                truncated += 1
            ids.append(np.asarray(self.special_prefix + row, dtype=np.int64))
        if labelled:
            answers = [
                np.asarray(a[: self.max_new_tokens], dtype=np.int64)
                for a in self._continuations(examples)
            ]
            golds = [self.spec.golds(e) for e in examples]
        else:
            answers = [np.zeros(0, dtype=np.int64) for _ in examples]
            golds = [[] for _ in examples]
        lengths = np.array([len(r) for r in ids], dtype=np.int64)
        return GenerationEncoded(ids, answers, golds, lengths, truncated)

    def _continuations(self, examples: Sequence[dict]) -> list[list[int]]:
        """Tokenise each continuation after the prompt's cue, so merges across it are
        respected."""
        cue = self.cue(self.spec.prompt)
        base = self._plain([cue])[0]
        conts = [self.spec.continuation(e) for e in examples]
        out = []
        for cont, joint in zip(conts, self._plain([cue + c for c in conts]), strict=True):
            if joint[: len(base)] == base and len(joint) > len(base):
                out.append(joint[len(base) :])
            else:  # the tokenizer merged across the cue: tokenise the answer alone
                out.append(self._plain([cont])[0])
        return out

    def _truncate(self, example: dict, row: list[int], budget: int) -> list[int]:
        """Drop tokens from the start of the truncate field until the prompt fits ``budget``
        tokens; then (or without one) keep the end of the prompt (its cue)."""
        field = self.spec.truncate_field
        if field is not None:
            values = dict(example)
            for _ in range(8):
                excess = len(row) - budget
                if excess <= 0:
                    return row
                values[field] = self._drop_tokens(str(values[field]), excess)
                row = self._plain([self.render(values)])[0]
                if not values[field]:
                    break
        if len(row) > budget:
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
        encoded: GenerationEncoded,
        indices: np.ndarray,
        max_sequences: int,
        device: torch.device | str | None = None,
        kind: str | None = None,
    ) -> Iterator[tuple[np.ndarray, GenerationBatch]]:
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
        self, encoded: GenerationEncoded, rows: np.ndarray, device: torch.device, kind: str
    ) -> GenerationBatch:
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
        # right padding keeps real tokens' logits independent of pads (ce); left padding
        # gives every row's next token in the last column (generate)
        input_ids, mask = padded(seqs, self.pad_id, left=kind == "generate")

        tensors = (input_ids, mask, keep, targets, target_mask)
        return GenerationBatch(kind, *(on_device(t, device) for t in tensors), golds, len(rows))

    # ------------------------------------------------------------ scoring

    def ce_losses(self, model: torch.nn.Module, batch: GenerationBatch) -> torch.Tensor:
        """Per-example mean token cross-entropy of the gold continuation, float32."""
        batch = self._prepare(model, batch, "ce")
        self._check_length(model, batch.input_ids.shape[1])
        with scoring():
            logp = kept_log_probs(model, batch)
            token_lp = logp.gather(-1, batch.targets[..., None]).squeeze(-1)
            count_ = batch.target_mask.sum(1).clamp_min(1.0)
            loss = -(token_lp * batch.target_mask).sum(1) / count_
        return loss.clone()

    def generate(self, model: torch.nn.Module, batch: GenerationBatch) -> list[str]:
        """Greedy answers (text before the first stop string, stripped), one per row."""
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
        extra: dict[str, Any] = {}
        if any(len(s) > 1 for s in self.spec.stop):  # a stop string over several tokens
            config.stop_strings = list(self.spec.stop)
            extra["tokenizer"] = self.tokenizer
        with torch.inference_mode():
            out = model.generate(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                generation_config=config,
                **extra,
            )
        texts = self.tokenizer.batch_decode(out[:, width:].tolist(), skip_special_tokens=True)
        return [self.spec.cut(t) for t in texts]

    def stop_ids(self) -> list[int]:
        """EOS and every token whose text holds a stop string (e.g. "\\n", "\\n\\n")."""
        if self._stop_ids is None:
            vocab = len(self.tokenizer)
            texts = self.tokenizer.batch_decode([[i] for i in range(vocab)])
            stops = {i for i, t in enumerate(texts) if any(s in t for s in self.spec.stop)}
            if self.tokenizer.eos_token_id is not None:
                stops.add(int(self.tokenizer.eos_token_id))
            self._stop_ids = sorted(stops)
        return self._stop_ids

    def neg_f1_losses(self, model: torch.nn.Module, batch: GenerationBatch) -> torch.Tensor:
        texts = self.generate(model, batch)
        f1 = [f1_score(t, g) for t, g in zip(texts, batch.golds, strict=True)]
        return torch.tensor([0.0 - f for f in f1], dtype=torch.float32)  # 0.0, not -0.0

    def losses(self, model: torch.nn.Module, batch: GenerationBatch) -> torch.Tensor:
        """Per-example objective, float32, shape (examples,)."""
        if batch.kind == "ce":
            return self.ce_losses(model, batch)
        return self.neg_f1_losses(model, batch)

    def predict(self, model: torch.nn.Module, batch: GenerationBatch) -> list[str]:
        return self.generate(model, batch)

    def evaluate(
        self,
        model: torch.nn.Module,
        encoded: GenerationEncoded,
        batch_size: int,
        world: World = SOLO,
    ) -> dict:
        """F1 and EM of greedy answers; ``loss`` is the objective's mean (CE needs one more
        teacher-forced pass, -F1 is free), ``completion_loss`` the mean CE when asked."""
        return self.evaluate_rows(model, encoded, batch_size, world)[0]

    def evaluate_rows(
        self,
        model: torch.nn.Module,
        encoded: GenerationEncoded,
        batch_size: int,
        world: World = SOLO,
    ) -> tuple[dict, list[dict]]:
        """The metrics, and each row's answer beside its golds and scores. Micro-batches
        are shared out among ``world``."""
        n = len(encoded)
        names = [m for m in self.spec.metrics if m in self.METRICS]
        if n == 0:
            return {**{m: float("nan") for m in names}, "loss": float("nan")}, []
        texts = self.generate_all(model, encoded, batch_size, world)
        f1 = np.array([f1_score(t, g) for t, g in zip(texts, encoded.golds, strict=True)])
        em = np.array([exact_match(t, g) for t, g in zip(texts, encoded.golds, strict=True)])
        values = {"f1": float(f1.mean()), "exact_match": float(em.mean())}
        if self.objective == "ce" or "completion_loss" in names:
            loss = np.full(n, -0.0)
            ce = self.batches(encoded, np.arange(n), batch_size, kind="ce")
            for positions, batch in evaluated(ce, world, n, "scoring answers"):
                loss[positions] = self.ce_losses(model, batch).double().cpu().numpy()
            values["completion_loss"] = float(world.sum_array(loss).mean())
        mean_loss = values.get("completion_loss") if self.objective == "ce" else -values["f1"]
        rows = [
            {"prediction": t, "answers": list(g), "f1": float(a), "exact_match": float(b)}
            for t, g, a, b in zip(texts, encoded.golds, f1, em, strict=True)
        ]
        return {**{m: values[m] for m in names}, "loss": mean_loss}, rows

    def predict_rows(
        self,
        model: torch.nn.Module,
        encoded: GenerationEncoded,
        batch_size: int,
        world: World = SOLO,
    ) -> list[dict]:
        """Each row's greedy answer (the text before the first stop string)."""
        return [{"prediction": t} for t in self.generate_all(model, encoded, batch_size, world)]

    def generate_all(
        self,
        model: torch.nn.Module,
        encoded: GenerationEncoded,
        batch_size: int,
        world: World = SOLO,
    ) -> list[str]:
        """Every row's greedy answer, in row order, on every rank."""
        n = len(encoded)
        texts: list[str | None] = [None] * n
        generate = self.batches(encoded, np.arange(n), batch_size, kind="generate")
        for positions, batch in evaluated(generate, world, n, "generating answers"):
            for p, text in zip(positions, self.generate(model, batch), strict=True):
                texts[int(p)] = text
        return world.merge(texts)

    # ------------------------------------------------------------ helpers

    def _prepare(
        self, model: torch.nn.Module, batch: GenerationBatch, kind: str
    ) -> GenerationBatch:
        if batch.kind != kind:
            raise ValueError(f"a '{batch.kind}' batch cannot feed the '{kind}' computation")
        if model.training:
            model.eval()
        return on_model_device(model, batch)

    def _check_length(self, model: torch.nn.Module, length: int) -> None:
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if isinstance(limit, int) and length > limit:
            raise UserError(
                f"{self.spec.title} sequences reach {length} tokens but the model handles "
                f"{limit}; set task.max_length to at most {limit}"
            )
