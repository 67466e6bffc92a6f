"""The ``task`` and ``data`` sections of a run: what to learn and where its rows come from.

These are the schemas alone, the bottom of ``paczero.tasks``: the task types and presets
read them, so they check only what needs no type. The registry (``paczero.tasks.registry``)
fills a task's defaults from its type or preset and checks its keys against them once the
section is built (``registry.checked``); ``RunConfig`` calls it, and adds the checks that
need other sections (the data sizes that fit one's own files among them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from paczero.errors import UserError
from paczero.textfiles import MAX_CONFIG_BYTES, read_text
from paczero.values import Bool, Int, Section, Seed, Text, label_key, yaml_mapping

DEFAULT_TEMPLATE = "mezo"  # task.template: a preset's prompt (a task of one's own has none)


def _label_words(value: Any) -> Any:
    """{label value: word} with the label values as text (YAML reads ``0:`` as a number)."""
    if isinstance(value, dict | list):
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        empty = [label for label, word in pairs if isinstance(word, str) and not word.strip()]
        if empty:
            raise ValueError(f"the label word of label '{empty[0]}' is empty")
    if isinstance(value, dict):
        keys = {k: label_key(k) for k in value}
        if any(not k for k in keys.values()):
            raise ValueError("every label needs a value (a key of the mapping)")
        return {keys[k]: v for k, v in value.items()}
    return value


class Candidate(Section):
    """One public choice of prompt for the private selection stage (docs/selection.md):
    the task keys it changes. Written without looking at the private rows."""

    name: Text  # how the selection log, the card and the summary name it
    template: str | None = None  # a preset's template (sst2: mezo, review, question, opinion)
    prompt: Text | None = None  # a task of one's own: another prompt over the same columns
    label_words: Annotated[list[Text] | dict[str, Text] | None, BeforeValidator(_label_words)] = (
        None
    )
    chat_template: Bool | None = None  # wrap this candidate's prompt in the chat template

    def changes(self) -> dict[str, Any]:
        """The task keys this candidate sets."""
        keys = ("template", "prompt", "label_words", "chat_template")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


class TaskConfig(Section):
    """A preset (``name: sst2`` or ``squad``) or a task of one's own (``type``: the task
    type, with its keys inline or in a task ``file``). The registry ``paczero.tasks`` knows
    each type's and preset's keys, defaults and checks (``registry.checked``)."""

    name: str = "sst2"  # a preset, or (with type) the name of your task
    type: str | None = None  # classification | generation
    file: Text | None = None  # a task YAML file: its keys fill those not given here
    # a preset's prompt template (sst2: mezo, review, question, opinion; squad: mezo, qa);
    # none named: the run selects among the preset's candidates (docs/selection.md)
    template: str | None = None
    # public candidate prompts the run selects among, privately, before training (the
    # first is where the selection starts); a preset without task.template has its own
    candidates: list[Candidate] | None = None
    prompt: Text | None = None  # your task's prompt over the row's fields: "Q: {question}\nA:"
    label_field: Text | None = None  # classification: the label column (default label)
    # classification: one label word per class, {label value: word} or a list (labels 0..)
    label_words: Annotated[list[Text] | dict[str, Text] | None, BeforeValidator(_label_words)] = (
        None
    )
    completion_field: Text | None = None  # generation: the column of the text to produce
    answers_field: Text | None = None  # generation: a column of acceptable answers (a list)
    target_delimiter: str = " "  # between the prompt and a label word or completion
    # wrap the prompt in the tokenizer's chat template (a user turn, then the assistant's
    # turn opened): for instruct models; a task of one's own then has no delimiter by default
    chat_template: Bool = False
    # with chat_template: the system turn (default none; a template that writes a default
    # system turn of its own when none is given gets an empty one instead)
    system_prompt: Text | None = None
    stop: list[Text] = Field(default_factory=lambda: ["\n"])  # generation: where answers end
    truncate_field: Text | None = None  # generation: the field cut when a prompt is too long
    metrics: list[Text] | None = None  # default: the type's; the first picks the dev-best
    objective: Literal["ce", "neg-f1"] = "ce"
    max_length: Int = Field(256, ge=8)  # default per task (its preset or type: the registry)
    max_new_tokens: Int = Field(50, ge=1)  # generation length of an answer

    @model_validator(mode="before")
    @classmethod
    def _file_and_defaults(cls, data: Any) -> Any:
        """The task file's keys under the ones given here; the name of a task of one's own
        (the file's stem, or its type); a max_length of None is not given (the registry
        then takes the preset's or the type's)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("file"):
            path = Path(str(data["file"])).expanduser()
            data = {**read_task_file(path), **data, "file": str(path.resolve())}
        if data.get("type") is not None and not data.get("name"):
            data["name"] = Path(data["file"]).stem if data.get("file") else data["type"]
        if "max_length" in data and data["max_length"] is None:
            del data["max_length"]
        return data

    @model_validator(mode="after")
    def _chat_turn_needs_no_delimiter(self) -> TaskConfig:
        """The assistant's turn starts a line: a label word or completion follows the
        templated prompt as is (an explicit task.target_delimiter is kept)."""
        if self.chat_template and self.type and "target_delimiter" not in self.model_fields_set:
            self.target_delimiter = ""
        if self.system_prompt is not None and not self.chat_template:
            raise ValueError(
                "task.system_prompt is a turn of the chat template: set task.chat_template=true"
            )
        return self


def read_task_file(path: Path) -> dict[str, Any]:
    """The keys of a task YAML file (lm-evaluation-harness style: type, prompt, label words)."""
    text = read_text(path, "task file", limit=MAX_CONFIG_BYTES)
    data = yaml_mapping(text, f"task file {path}", "task keys")
    if not data:  # else the preset's defaults would run in its place (SST-2's template)
        raise UserError(
            f"task file {path} is empty: give its type, prompt and label words (see "
            "examples/tickets-task.yaml)"
        )
    if "file" in data:
        raise UserError(f"task file {path}: a task file cannot name another (drop its 'file')")
    return data


class HubSplits(Section):
    """The split of a hub data set each part is read from (``data.train`` etc. a hub id)."""

    train: Text = "train"
    dev: Text = "validation"
    test: Text = "test"


class DataConfig(Section):
    source: Literal["auto", "synthetic"] = "auto"
    dir: Text | None = Field(default_factory=lambda: os.environ.get("PACZERO_DATA_DIR") or None)
    # your own data: a CSV, TSV, JSON, JSON Lines or Parquet file or folder, or a hub id
    train: Text | None = None  # the private pool's source (the guarantee covers the pool)
    dev: Text | None = None  # default: carved from data.test's file, else from data.train
    test: Text | None = None  # default: carved from data.dev's file, else from data.train
    hub_config: Text | None = None  # the hub data set's config (e.g. sst2 of nyu-mll/glue)
    splits: HubSplits = Field(default_factory=HubSplits)
    group_field: Text | None = None  # rows sharing its value are one privacy unit (a user)
    # the pool: rows, or units with data.group_field; 'all': every unit of data.train not
    # carved for dev/test. In a run, sizes not given fit one's own local files
    # (own_data.sized_to_own_files, called by RunConfig).
    num_train: Int = Field(1000, ge=1)
    num_dev: Int = Field(500, ge=1)
    num_test: Int = Field(1000, ge=1)
    seed: Seed = 0

    @model_validator(mode="before")
    @classmethod
    def _synthetic_reads_no_files(cls, data: Any) -> Any:
        """The synthetic set reads no files: a ``data.dir`` given with it is refused rather
        than silently ignored (``$PACZERO_DATA_DIR``, an environment default, is dropped)."""
        if not isinstance(data, dict) or data.get("source") != "synthetic":
            return data
        given = data.get("dir")
        if given is not None and given != (os.environ.get("PACZERO_DATA_DIR") or None):
            raise ValueError(
                f"data.dir ({given}) is set but data.source is 'synthetic', which reads no "
                "files: drop data.dir, or set data.source=auto to read it"
            )
        for key in ("train", "dev", "test"):
            if data.get(key) is not None:
                raise ValueError(
                    f"data.{key} is set but data.source is 'synthetic', which reads no files: "
                    "drop one of them"
                )
        return {**data, "dir": None}

    @field_validator("train", "dev", "test")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        """A local file or folder by its absolute path (a run resumes from anywhere); a hub
        id as given."""
        if value is not None and Path(value).expanduser().exists():
            return str(Path(value).expanduser().resolve())
        return value

    @model_validator(mode="after")
    def _own_data_keys(self) -> DataConfig:
        for key in ("dev", "test", "group_field", "hub_config"):
            if getattr(self, key) is not None and self.train is None:
                raise ValueError(
                    f"data.{key} goes with data.train (your own data); the presets' own files "
                    "(data.dir) have a fixed split"
                )
        return self
