"""Typed run configuration: one flat, dotted set of keys, saved with every run.

A config comes from a recipe name or a YAML file, then dotted ``key=value`` overrides.
Every error is turned into one line that names the key (and a close match for typos).
"""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from paczero.errors import UserError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraConfig(Section):
    rank: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    targets: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)


class ModelConfig(Section):
    name: str = "smollm2-135m"
    # auto: float16 for full-parameter on CUDA, else float32 (docs/performance.md)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"
    # Place a model larger than one device across GPUs with accelerate: auto, balanced, or
    # an explicit {module name: device} map (docs/scaling.md); None keeps it on model.device.
    device_map: Literal["auto", "balanced"] | dict[str, str | int] | None = None
    track: Literal["full", "lora"] = "lora"
    lora: LoraConfig = Field(default_factory=LoraConfig)


TASK_MAX_LENGTH = {"sst2": 256, "squad": 2048}  # SQuAD: MeZO's OPT context (long contexts)


class TaskConfig(Section):
    name: Literal["sst2", "squad"] = "sst2"
    template: str = "mezo"  # MeZO's prompt; valid for every task
    objective: Literal["ce", "neg-f1"] = "ce"
    max_length: int = Field(256, ge=8)  # default per task (TASK_MAX_LENGTH)
    max_new_tokens: int = Field(50, ge=1)  # generation length for SQuAD answers

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, data: Any) -> Any:
        """SQuAD prompts need a longer context than SST-2 when max_length is not given."""
        if isinstance(data, dict) and data.get("max_length") is None:
            data = {k: v for k, v in data.items() if k != "max_length"}
            name = data.get("name", "sst2")
            if name in TASK_MAX_LENGTH:
                data["max_length"] = TASK_MAX_LENGTH[name]
        return data

    @model_validator(mode="after")
    def _objective_fits(self) -> TaskConfig:
        if self.objective == "neg-f1" and self.name != "squad":
            raise ValueError(
                f"task.objective 'neg-f1' (negative F1 of a generated answer) is for task.name "
                f"'squad' only; use 'ce' for '{self.name}'"
            )
        if self.name == "squad" and self.max_length <= self.max_new_tokens:
            raise ValueError(
                f"task.max_length ({self.max_length}) must exceed task.max_new_tokens "
                f"({self.max_new_tokens}): the prompt and the answer share it"
            )
        return self


class DataConfig(Section):
    source: Literal["auto", "synthetic"] = "auto"
    dir: str | None = Field(default_factory=lambda: os.environ.get("PACZERO_DATA_DIR") or None)
    num_train: int = Field(1000, ge=1)
    num_dev: int = Field(500, ge=1)
    num_test: int = Field(1000, ge=1)
    seed: int = 0

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
        return {**data, "dir": None}


class ZOConfig(Section):
    eps: float = Field(1e-3, gt=0)
    directions: int = Field(1, ge=1)
    micro_batch: int = Field(32, ge=1)
    # padded tokens per micro-batch at most; auto: 512 on CPU (short sentences are not
    # padded to a long one's length), no cap on accelerators (they want wide batches)
    micro_batch_tokens: int | Literal["auto", "off"] = "auto"
    restore: Literal["auto", "exact", "fused"] = "auto"

    @field_validator("micro_batch_tokens")
    @classmethod
    def _positive_tokens(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be a positive integer, 'auto' or 'off'")
        return value


class TrainConfig(Section):
    steps: int = Field(1000, ge=1)
    lr: float = Field(1e-6, gt=0)
    schedule: Literal["constant", "linear"] = "constant"
    batch_size: int | Literal["full"] = 16
    eval_every: int = Field(0, ge=0)
    checkpoint_every: int = Field(0, ge=0)
    eval_batch: int = Field(32, ge=1)
    eval_at_start: bool = True
    # experiment tracking (paczero.tracking): public per-step figures and evaluations
    report_to: list[Literal["tensorboard", "wandb", "trackio"]] = Field(default_factory=list)

    @field_validator("report_to", mode="before")
    @classmethod
    def _backends(cls, value: Any) -> Any:
        if value is None or value == "none":
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("batch_size")
    @classmethod
    def _positive_batch(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be a positive integer or 'full'")
        return value


class MechanismConfig(Section):
    """The keys of every mechanism; which ones a mechanism needs and accepts is checked by
    the mechanism itself (``Mechanism.check_config``, called from ``RunConfig``)."""

    name: str = "mezo"
    subsets: int = Field(128, ge=2)
    construction: Literal["random-halves", "disjoint-pairs"] = "random-halves"
    clip: float | None = Field(None, gt=0)
    budget: float | None = Field(None, gt=0)
    allocation: Literal["adaptive", "uniform"] = "adaptive"
    release: Literal["gaussian", "randomized-response"] = "gaussian"
    disagreement: Literal["coin", "skip"] = "coin"
    skip_all_zero: bool = False
    # DP baselines (dpzero, dpzo, dpaggzo); delta 0 is only for dpzo's pure-DP Laplace noise.
    epsilon: float | None = Field(None, gt=0, allow_inf_nan=False)
    delta: float = Field(1e-5, ge=0, lt=1)
    expected_batch: int | None = Field(None, ge=1)
    noise: Literal["gaussian", "laplace"] = "gaussian"
    denominator: Literal["expected", "noisy-count"] = "expected"
    count_fraction: float = Field(0.05, gt=0, lt=1)
    accountant: Literal["pld", "rdp", "opacus-rdp"] = "pld"
    match_mi: float | None = Field(None, gt=0, lt=0.6931471805599453)

    @field_validator("name")
    @classmethod
    def _registered(cls, value: str) -> str:
        from paczero.mechanisms import mechanism_class  # the registry imports this module

        mechanism_class(value)
        return value

    @field_validator("subsets")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (each example is in exactly M/2 subsets), got {value}")
        return value


class SeedConfig(Section):
    public: int = 0
    secret: int | None = None


class AuditConfig(Section):
    """Canaries for `paczero audit` (docs/audit.md 4): m examples, each included in the pool
    with probability 1/2 from the secret stream; the inclusion stays under private/."""

    canaries: int = Field(0, ge=0)
    canary_file: str | None = None  # JSON Lines of canary examples (default: built in)


class RunConfig(Section):
    description: str = ""
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    zo: ZOConfig = Field(default_factory=ZOConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    mechanism: MechanismConfig = Field(default_factory=MechanismConfig)
    seed: SeedConfig = Field(default_factory=SeedConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        pool = self.data.num_train
        batch = self.train.batch_size
        if isinstance(batch, int) and batch > pool:
            raise ValueError(
                f"train.batch_size ({batch}) is larger than the pool data.num_train ({pool})"
            )
        from paczero.mechanisms import mechanism_class  # the registry imports this module

        mechanism_class(self.mechanism.name).check_config(
            self.mechanism, pool_size=pool, steps=self.train.steps, directions=self.zo.directions
        )
        return self

    def public_dict(self) -> dict[str, Any]:
        """The config as every public file shows it: all keys but the secret seed, which
        would let anyone recompute S* and every noise draw (it lives in private/)."""
        data = self.model_dump(mode="json")
        data["seed"].pop("secret", None)
        return data

    def to_yaml(self) -> str:
        """config.yaml of a run: ``public_dict``."""
        return yaml.safe_dump(self.public_dict(), sort_keys=False)


# ---------------------------------------------------------------- loading


def recipe_names() -> list[str]:
    folder = resources.files("paczero") / "recipes"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def recipe_text(name: str) -> str:
    return (resources.files("paczero") / "recipes" / f"{name}.yaml").read_text()


def read_source(source: str | None) -> dict[str, Any]:
    """A recipe name or a YAML path -> the raw mapping (empty for None)."""
    if source is None:
        return {}
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UserError(f"config file not found: {source}")
        text = path.read_text()
    elif source in recipe_names():
        text = recipe_text(source)
    else:
        hint = _suggest(source, recipe_names())
        raise UserError(f"unknown recipe or config file '{source}'{hint}; see `paczero recipes`")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{source}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{source}: a config must be a YAML mapping of sections")
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Set ``a.b.c=value`` in a nested mapping; the value is parsed as YAML (numbers, lists)."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set expects key=value, got '{assignment}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {key}: '{part}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def load_config(
    source: str | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> RunConfig:
    data = read_source(source)
    described = data.get("description")
    for assignment in overrides:
        apply_override(data, assignment)
    if not _is_run_config(source):
        describe_overrides(data, described, overrides)
    return validate_config(data)


def describe_overrides(
    data: dict[str, Any], described: Any, overrides: list[str] | tuple[str, ...]
) -> None:
    """A recipe's description no longer describes a run whose keys were overridden: it
    says which were (unless ``description`` itself was set)."""
    if not described or not isinstance(described, str) or data.get("description") != described:
        return
    keys = [a.partition("=")[0].strip() for a in overrides if a.partition("=")[0].strip()]
    keys = [k for k in dict.fromkeys(keys) if k != "description"]
    if keys:
        data["description"] = f"{described} [overridden: {', '.join(keys)}]"


def _is_run_config(source: str | None) -> bool:
    """A run's own config.yaml is the resolved config: never re-described."""
    if source is None:
        return False
    path = Path(source)
    return path.name == "config.yaml" and (
        (path.parent / "releases.jsonl").exists() or (path.parent / "run.json").exists()
    )


def validate_config(data: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise UserError(_one_line(err)) from None


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    internal = ("function-", "int", "literal")
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith(internal))
    kind = first["type"]
    if kind == "extra_forbidden":
        parent, _, leaf = loc.rpartition(".")
        hint = _suggest(leaf, _known_keys(parent))
        return f"unknown config key '{loc}'{hint}"
    msg = first["msg"].removeprefix("Value error, ")
    if kind == "value_error" and not loc:
        return f"invalid config: {msg}"
    got = first.get("input")
    shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    return f"invalid value for '{loc}': {msg}{shown}"


def _known_keys(parent: str) -> list[str]:
    model: type[BaseModel] = RunConfig
    for part in filter(None, parent.split(".")):
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
