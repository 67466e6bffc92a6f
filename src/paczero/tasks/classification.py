"""Classification by label-word likelihood (MeZO's objective), over any number of classes.

A spec names the prompt template over the row's fields, the label column and one label
word per class. score_c = mean over label word c's tokens of log p(token | prompt); the
per-example loss is the cross-entropy -log softmax(score)[label], and the prediction is
argmax score. When every label word is one distinct token, one sequence per example
suffices: all scores come from the same next-token distribution at the last prompt
position; otherwise one sequence per class.

Prompts are tokenised once (``encode``); ``batches`` pads length-sorted micro-batches on
the right, so causal attention keeps every real token's logits independent of padding.
Logits are computed only where the loss reads them (``logits_to_keep``). Metrics: accuracy
and macro-F1 (``task.metrics``), and the mean loss.
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
from paczero.tasks.metrics import macro_f1
from paczero.tasks.own_data import RowSchema, cell_text
from paczero.values import label_key

if TYPE_CHECKING:
    from paczero.tasks.options import TaskConfig


@dataclass(frozen=True)
class ClassificationSpec:
    name: str  # "sst2/mezo", or the task's own name
    prompt: Prompt
    label_field: str
    labels: tuple[str, ...]  # each class's value in the label column, as text
    words: tuple[str, ...]  # each class's label word, as it follows the prompt
    metrics: tuple[str, ...] = ("accuracy", "macro_f1")
    where: str = "task.label_words"  # the config key errors about the label words name

    def class_of(self, value: Any) -> int | None:
        text = label_key(value)
        return self.labels.index(text) if text in self.labels else None


@dataclass
class EncodedSet:
    """Token ids of each prompt (with the tokenizer's leading special tokens), no padding."""

    ids: list[np.ndarray]
    labels: np.ndarray  # int64 class index, one per example
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
    targets: torch.Tensor | None  # (rows, P) label-word token at each kept position
    target_mask: torch.Tensor | None  # (rows, P) float, 1 where the kept position is real
    labels: torch.Tensor  # (examples,)
    n_examples: int


class ClassificationTask(TaskBase):
    kind = "classification"
    METRICS = ("accuracy", "macro_f1")
    SELECTABLE = METRICS  # metrics that may pick the dev-best model (they improve upwards)
    OBJECTIVES = ("ce",)
    default_max_length = 256
    min_prompt_tokens = 16
    # keys of other task types: refused here rather than silently ignored
    FOREIGN = ("completion_field", "answers_field", "truncate_field")

    def __init__(
        self,
        cfg: TaskConfig,
        tokenizer: Any,
        *,
        spec: ClassificationSpec,
        device: torch.device | str = "cpu",
        single_token: bool | None = None,
        max_batch_tokens: int | None = None,
    ):
        """``single_token=False`` forces one sequence per class (for tests and checks);
        ``max_batch_tokens`` caps the padded tokens of a micro-batch."""
        super().__init__(
            cfg, tokenizer, spec=spec, device=device, max_batch_tokens=max_batch_tokens
        )
        self.option_ids = self._option_ids()
        fits_one = all(len(o) == 1 for o in self.option_ids)
        fits_one = fits_one and len({o[0] for o in self.option_ids}) == len(self.option_ids)
        if single_token and not fits_one:
            raise UserError(
                f"{spec.where}: the label words are not single distinct "
                "tokens for this tokenizer; leave single_token unset"
            )
        self.single_token = fits_one if single_token is None else bool(single_token)
        self.n_options = len(self.option_ids)
        self.sequences_per_example = 1 if self.single_token else self.n_options
        longest_option = 0 if self.single_token else max(len(o) for o in self.option_ids)
        self.max_prompt = cfg.max_length - longest_option
        if self.max_prompt <= len(self.special_prefix):
            raise UserError(f"task.max_length ({cfg.max_length}) is too short for the label words")

    # ------------------------------------------------------------ the type's declarations

    @classmethod
    def check_config(cls, cfg: TaskConfig) -> None:
        """ValueError naming the key if ``cfg`` is not a classification task of one's own."""
        if not cfg.prompt:
            raise ValueError(
                "a classification task needs task.prompt, e.g. 'Message: {text}\\nTeam:'"
            )
        if not cfg.label_words:
            raise ValueError(
                "a classification task needs task.label_words: a label word per class, as "
                "{label value: word} (e.g. {billing: Billing, sales: Sales}) or a list for "
                "labels 0, 1, ..."
            )
        spec = cls.spec_from(cfg)
        if len(spec.labels) < 2:
            raise ValueError("task.label_words needs at least 2 classes")
        if len(set(spec.labels)) < len(spec.labels):
            raise ValueError(f"task.label_words names a label twice ({', '.join(spec.labels)})")
        if len(set(spec.words)) < len(spec.words) or not all(w.strip() for w in spec.words):
            raise ValueError("task.label_words must be distinct and not empty")

    @classmethod
    def spec_from(cls, cfg: TaskConfig) -> ClassificationSpec:
        """The spec of a classification task of one's own."""
        words = cfg.label_words or []
        pairs = list(enumerate(words)) if isinstance(words, list) else list(words.items())
        return ClassificationSpec(
            name=cfg.name,
            prompt=Prompt(cfg.prompt or ""),
            label_field=cfg.label_field or "label",
            labels=tuple(label_key(k) for k, _ in pairs),
            words=tuple(cfg.target_delimiter + str(w) for _, w in pairs),
            metrics=tuple(cfg.metrics or cls.METRICS),
        )

    @classmethod
    def row_schema(cls, spec: ClassificationSpec) -> RowSchema:
        """The prompt's fields and the label column; each row's text and label checked."""
        columns = {name: "a field of task.prompt" for name in prompt_fields(spec.prompt.text)}
        columns[spec.label_field] = "task.label_field"

        def check(row: dict, where: str) -> dict:
            for name in columns:
                if name != spec.label_field:
                    cell_text(row[name], f"{where}: column '{name}'")
            if spec.class_of(row[spec.label_field]) is None:
                raise UserError(
                    f"{where}: label {_shown(row[spec.label_field])} (column "
                    f"'{spec.label_field}') is not one of the labels of {spec.where}: "
                    f"{', '.join(spec.labels)}"
                )
            return {name: row[name] for name in columns}

        return RowSchema(columns, check, label=spec.label_field)

    def _option_ids(self) -> list[list[int]]:
        """Tokenise prompt+word jointly, so merges across the boundary are respected."""
        prompt = self.render({f: "x" for f in self.spec.prompt.fields})
        base = self._plain(prompt)
        out = []
        for option in self.spec.words:
            joint = self._plain(prompt + option)
            if joint[: len(base)] != base or len(joint) == len(base):
                raise UserError(
                    f"{self.spec.where}: the tokenizer merges the label word "
                    f"{option!r} into the prompt; choose another "
                    f"{'template' if 'template' in self.spec.where else 'word'}"
                )
            out.append(joint[len(base) :])
        return out

    def _plain(self, text: str) -> list[int]:
        return plain_ids(self.tokenizer, [text])[0]

    def describe(self) -> str:
        mode = (
            "single-token label words, 1 sequence per example"
            if self.single_token
            else f"1 sequence per option ({self.n_options})"
        )
        words = " | ".join(repr(o) for o in self.spec.words)
        return f"{self.spec.name}: {self.spec.prompt.placeholder()!r} -> {words} ({mode})"

    # ------------------------------------------------------------ encoding

    def encode(self, examples: Sequence[dict], labelled: bool = True) -> EncodedSet:
        """Token ids of each row's prompt; ``labelled=False`` for rows to predict (no label
        column: every label reads -1)."""
        prompts = [self.render(e) for e in examples]
        labels = np.array([self._label(e) if labelled else -1 for e in examples], dtype=np.int64)
        tokenised = plain_ids(self.tokenizer, prompts)
        budget = self.max_prompt - len(self.special_prefix)
        ids, truncated = [], 0
        for row in tokenised:
            if len(row) > budget:  # keep the end: the template's cue words sit there
                row = row[len(row) - budget :]
                truncated += 1
            ids.append(np.asarray(self.special_prefix + list(row), dtype=np.int64))
        lengths = np.array([len(r) for r in ids], dtype=np.int64)
        return EncodedSet(ids, labels, lengths, truncated)

    def _label(self, example: dict) -> int:
        value = example[self.spec.label_field]
        index = self.spec.class_of(value)
        if index is None:
            raise UserError(
                f"{self.name}: label {_shown(value)} is not one of the task's labels "
                f"({', '.join(self.spec.labels)})"
            )
        return index

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
        input_ids, mask = padded(seqs, self.pad_id)

        tensors = (input_ids, mask, keep, targets, target_mask)
        return Batch(*(on_device(t, device) for t in tensors), labels.to(device), len(rows))

    # ------------------------------------------------------------ scoring

    def scores(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """(examples, classes) float32 length-normalised log-likelihoods of the label words."""
        if model.training:
            model.eval()
        batch = on_model_device(model, batch)
        with scoring():
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
        """Per-example cross-entropy over the classes, float32, shape (examples,)."""
        scores = self.scores(model, batch)
        return _cross_entropy(scores, batch.labels.to(scores.device))

    def predict(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        return self.scores(model, batch).argmax(dim=-1)

    def evaluate(
        self, model: torch.nn.Module, encoded: EncodedSet, batch_size: int, world: World = SOLO
    ) -> dict:
        """Accuracy (and macro-F1 when asked) and mean loss over every row."""
        return self.evaluate_rows(model, encoded, batch_size, world)[0]

    def evaluate_rows(
        self, model: torch.nn.Module, encoded: EncodedSet, batch_size: int, world: World = SOLO
    ) -> tuple[dict, list[dict]]:
        """The metrics, and each row's prediction beside its label, from one forward pass
        per micro-batch (shared out among the ranks of ``world``)."""
        n = len(encoded)
        names = [m for m in self.spec.metrics if m in self.METRICS]
        if n == 0:
            return {**{m: float("nan") for m in names}, "loss": float("nan")}, []
        scores = self.score_all(model, encoded, batch_size, world)
        gold = encoded.labels
        as_trained = torch.from_numpy(scores).float()  # the float32 scores of training's loss
        loss = _cross_entropy(as_trained, torch.from_numpy(gold)).double().numpy()
        predicted = scores.argmax(axis=1)
        values = {
            "accuracy": float((predicted == gold).mean()),
            "macro_f1": macro_f1(gold, predicted),
        }
        metrics = {**{m: values[m] for m in names}, "loss": float(loss.mean())}
        rows = self._rows(scores)
        for row, label in zip(rows, gold, strict=True):
            row["label"] = self.spec.labels[label]
            row["correct"] = row["prediction"] == row["label"]
        return metrics, rows

    def predict_rows(
        self, model: torch.nn.Module, encoded: EncodedSet, batch_size: int, world: World = SOLO
    ) -> list[dict]:
        """Each row's predicted label and every label's probability (the softmax of the
        label words' scores, the ones training and evaluation compare)."""
        return self._rows(self.score_all(model, encoded, batch_size, world))

    def score_all(
        self, model: torch.nn.Module, encoded: EncodedSet, batch_size: int, world: World = SOLO
    ) -> np.ndarray:
        """(rows, classes) scores of every row, in row order (float32 values, held in
        float64 for the sum over ranks)."""
        n = len(encoded)
        out = np.full((n, self.n_options), -0.0)  # -0.0: see distributed.unowned
        for positions, batch in evaluated(
            self.batches(encoded, np.arange(n), batch_size), world, n
        ):
            out[positions] = self.scores(model, batch).double().cpu().numpy()
        return world.sum_array(out)

    def _rows(self, scores: np.ndarray) -> list[dict]:
        probs = np.exp(scores - np.logaddexp.reduce(scores, axis=1, keepdims=True))
        labels = self.spec.labels
        return [
            {
                "prediction": labels[int(p.argmax())],
                "probabilities": {
                    label: round(float(q), 6) for label, q in zip(labels, p, strict=True)
                },
            }
            for p in probs
        ]


def _cross_entropy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return -torch.log_softmax(scores, dim=-1).gather(1, labels[:, None]).squeeze(1)


def _shown(value: Any) -> str:
    return repr(value) if not isinstance(value, str) else repr(value[:40])
