"""What every task type shares: the ``Task`` protocol, prompts over a row's fields, presets.

A task type (``classification``, ``generation``) is one class that declares how its rows
are read (``row_schema``: the columns it needs and the check of each row, before any
model loads), encoded (``encode``: tokenise once), batched (``batches``: length-sorted
micro-batches) and scored (``losses``, ``evaluate``). A preset (SST-2, SQuAD) is a task
type with a fixed spec and its own reader of the published files.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from paczero import progress
from paczero.distributed import World, shard
from paczero.errors import UserError

if TYPE_CHECKING:
    from paczero.tasks.options import DataConfig, TaskConfig


class Encoded(Protocol):
    """A tokenised split of any task: one entry per example, its prompt length known."""

    lengths: np.ndarray

    def __len__(self) -> int: ...


class Task(Protocol):
    name: str
    metric: str  # the dev metric that picks the dev-best model (it improves upwards)
    metric_mode: str  # "max"

    def encode(self, examples: Sequence[dict]) -> Encoded: ...

    def batches(
        self, encoded: Encoded, indices: np.ndarray, max_sequences: int
    ) -> Iterator[tuple[np.ndarray, Any]]: ...

    def losses(self, model: torch.nn.Module, batch: Any) -> torch.Tensor: ...

    def evaluate(
        self, model: torch.nn.Module, encoded: Encoded, batch_size: int, world: World = ...
    ) -> dict: ...

    def describe(self) -> str: ...


# ---------------------------------------------------------------- prompts


def prompt_fields(text: str) -> tuple[str, ...]:
    """The ``{field}`` names of a prompt template, in order (ValueError if it is not one)."""
    names = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as err:
        raise ValueError(
            f"not a prompt template ({err}); write a literal brace as {{{{ or }}}}"
        ) from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or name.isdigit():
            raise ValueError("a field needs a column name: write {text}, not {} or {0}")
        if any(c in name for c in ".[]") or spec or conversion:
            raise ValueError(f"field '{name}' is not a plain column name (write {{text}})")
        names.append(name)
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class Prompt:
    """A prompt template over a row's fields: ``"Message: {text}\\nTeam:"``.

    Each field's value is inserted stripped of surrounding whitespace, except the
    ``verbatim`` ones (SQuAD's title and context, as MeZO renders them).
    """

    text: str
    verbatim: frozenset[str] = frozenset()

    @property
    def fields(self) -> tuple[str, ...]:
        return prompt_fields(self.text)

    def render(self, row: Mapping[str, Any]) -> str:
        values = {}
        for name in self.fields:
            value = str(row[name])
            values[name] = value if name in self.verbatim else value.strip()
        return self.text.format_map(values)

    def placeholder(self) -> str:
        """The template with ``<field>`` for each field (for ``describe``)."""
        return self.text.format_map({name: f"<{name}>" for name in self.fields})

    def cue(self) -> str:
        """The text after the last field (``"\\nAnswer:"``): a completion follows it."""
        cue = ""
        for literal, name, _, _ in string.Formatter().parse(self.text):
            # a part is (literal text, then a field or None): a field resets the cue
            cue = "" if name is not None else cue + literal
        return cue


def escape(text: str) -> str:
    """``text`` as the literal part of a prompt template."""
    return text.replace("{", "{{").replace("}", "}}")


# ---------------------------------------------------------------- presets


@dataclass(frozen=True)
class Preset:
    """A published task as a spec of a task type plus its own reader of the published files
    (used when ``data.train`` is not given)."""

    name: str
    type: type  # the task type class
    templates: tuple[str, ...]  # the values of task.template
    spec: Callable[[TaskConfig], Any]  # task config -> the type's spec
    read: Callable[[DataConfig], Any]  # data config -> Splits (its files, the hub)
    max_length: int  # the default task.max_length
    min_prompt_tokens: int  # the fewest prompt tokens a run may keep
    title: str  # how errors and descriptions name it ("SQuAD")
    # the candidates a run that names no task.template selects among (task.candidates
    # entries), public wordings written without looking at the data; the first is the start
    candidates: tuple[dict[str, Any], ...] = ()


def with_metrics(spec: Any, cfg: TaskConfig) -> Any:
    """A preset's spec with the metrics of ``task.metrics``, when given."""
    return replace(spec, metrics=tuple(cfg.metrics)) if cfg.metrics else spec


class TaskBase:
    """What every task type keeps: its config and spec, the tokenizer, where batches go."""

    metric_mode = "max"

    def __init__(
        self,
        cfg: TaskConfig,
        tokenizer: Any,
        *,
        spec: Any,
        device: torch.device | str = "cpu",
        max_batch_tokens: int | None = None,
    ):
        self.cfg = cfg
        self.spec = spec
        self.name = cfg.name
        self.metric = spec.metrics[0]
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.max_batch_tokens = max_batch_tokens  # caps the padded tokens of a micro-batch
        self.pad_id = pad_id(tokenizer)
        self.chat = bool(getattr(cfg, "chat_template", False))
        if self.chat and not getattr(tokenizer, "chat_template", None):
            raise UserError(
                "task.chat_template is true but this model's tokenizer has no chat template: "
                "use an instruct model, or set task.chat_template=false"
            )
        # a chat template writes its own leading special tokens (BOS) into the text
        self.special_prefix = [] if self.chat else special_prefix(tokenizer)
        self.system = getattr(cfg, "system_prompt", None)
        if self.chat and self.system is None and _writes_own_system_turn(tokenizer):
            self.system = ""  # not the template's default ("You are a helpful AI ...")
        if self.chat:
            self.wrap("")  # a template that refuses the system turn says so now

    def wrap(self, prompt: str) -> str:
        """The prompt as the model reads it: as is, or (task.chat_template) the user's turn
        of the tokenizer's chat template, after the system turn where there is one
        (``__init__``), followed by the opened assistant turn."""
        if not self.chat:
            return prompt
        turns = [] if self.system is None else [{"role": "system", "content": self.system}]
        turns.append({"role": "user", "content": prompt})
        try:
            return _chat(self.tokenizer, turns)
        except Exception as err:  # jinja's raise_exception: "System role not supported"
            if self.system is None:
                raise
            raise UserError(
                f"task.system_prompt: this model's chat template refuses a system turn ({err})"
            ) from None

    def render(self, example: Mapping[str, Any]) -> str:
        """A row's prompt as the model reads it (``wrap`` of the spec's prompt)."""
        return self.wrap(self.spec.prompt.render(example))

    def cue(self, prompt: Prompt) -> str:
        """The text after the prompt's last field as the model reads it (a completion
        follows it): the prompt's cue, then the chat template's end of the user turn."""
        marker = "\x00paczero-field\x00"
        return self.wrap(marker + prompt.cue()).rpartition(marker)[2]

    def inputs(self, rows: Sequence[dict]) -> list[dict]:
        """Each row's prompt fields: what a predictions file shows beside a prediction."""
        return [{name: row[name] for name in self.spec.prompt.fields} for row in rows]


def _chat(tokenizer: Any, turns: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)


def _writes_own_system_turn(tokenizer: Any) -> bool:
    """Whether the chat template puts a system turn of its own before a lone user turn
    (SmolLM2's default one): its text then starts as a given system turn's does."""
    marker = "\x00paczero-system\x00"
    try:
        given = _chat(
            tokenizer, [{"role": "system", "content": marker}, {"role": "user", "content": "u"}]
        )
    except Exception:  # a template without a system role inserts none
        return False
    opening = given.partition(marker)[0]
    alone = _chat(tokenizer, [{"role": "user", "content": "u"}])
    return bool(opening) and marker in given and alone.startswith(opening)


# ---------------------------------------------------------------- shared helpers


def row_records(inputs: Sequence[dict], predictions: Sequence[dict]) -> list[dict]:
    """One record per row for a predictions file: its number, its input, its prediction."""
    pairs = enumerate(zip(inputs, predictions, strict=True))
    return [{"row": i + 1, "input": given, **predicted} for i, (given, predicted) in pairs]


def count(item: tuple) -> int:
    """Examples in one ``(positions, batch)`` work item (for progress)."""
    return len(item[0])


def evaluated(batches: Iterator, world: World, n: int, what: str | None = None) -> Iterator:
    """This rank's share of an evaluation's ``(positions, batch)`` items, with progress
    (``what`` names the pass: "generating answers")."""
    desc = progress.label(what) if what else None
    total = n if world.size == 1 else None
    return progress.track(shard(batches, world), total=total, unit="ex", size=count, desc=desc)


def on_device(array: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    return None if array is None else torch.from_numpy(array).to(device, non_blocking=True)


def on_model_device(model: torch.nn.Module, batch: Any) -> Any:
    param = next(model.parameters(), None)
    if param is not None and param.device != batch.device:
        return batch.to(param.device)
    return batch


def special_prefix(tokenizer: Any) -> list[int]:
    """The special tokens the tokenizer puts before text (BOS for OPT/Llama, none for SmolLM2)."""
    plain = list(tokenizer("x", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("x")["input_ids"])
    for k in range(len(full) - len(plain) + 1):
        if full[k : k + len(plain)] == plain:
            return full[:k]
    return []


def plain_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids of each text without special tokens."""
    if not texts:
        return []
    return [list(r) for r in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def pad_id(tokenizer: Any) -> int:
    if tokenizer.pad_token_id is None:
        raise UserError("the tokenizer has no pad token; load it through paczero.load_model")
    return int(tokenizer.pad_token_id)


def padded(seqs: list[np.ndarray], pad: int, left: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, attention mask) of sequences padded to the longest, right or left."""
    width = max(len(s) for s in seqs)
    input_ids = np.full((len(seqs), width), pad, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        where = slice(width - len(s), width) if left else slice(0, len(s))
        input_ids[r, where] = s
        mask[r, where] = 1
    return input_ids, mask
