"""Typed run configuration: sections of keys (model, task, data, ...), saved with every run.

A run's config is built once, by ``load_config``: from a recipe name, a YAML file, a mapping
or a config, then dotted ``key=value`` overrides; every command that runs or reads a run
starts from it. The mechanism's class is looked up then, once, and handed on with the
config (``RunConfig.mechanism_type``). Every error is turned into one line that names the
key (and a close match for typos).
"""

from __future__ import annotations

import copy
import difflib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from paczero.errors import UserError
from paczero.mechanisms import (
    DEFAULT_MECHANISM,
    REGISTRY,
    Mechanism,
    default_subsets,
    mechanism_class,
    mechanism_keys,
    section_type,
)
from paczero.tasks import registry
from paczero.tasks.options import DataConfig, TaskConfig
from paczero.tasks.own_data import dev_from_private_source, sized_to_own_files
from paczero.textfiles import MAX_CONFIG_BYTES, parse_yaml, read_text
from paczero.values import (
    Bool,
    Device,
    Float,
    Int,
    Section,
    Seed,
    Text,
    yaml_mapping,
)

MECHANISM = section_type()  # one section per registered mechanism, picked by mechanism.name


class LoraConfig(Section):
    rank: Int = Field(8, ge=1)
    alpha: Float = Field(16.0, gt=0)
    dropout: Float = Field(0.0, ge=0, lt=1)
    targets: list[Text] = Field(default_factory=lambda: ["q_proj", "v_proj"], min_length=1)


class ModelConfig(Section):
    name: Text = "smollm2-135m"
    # auto: float16 for full-parameter on CUDA, else float32 (docs/performance.md)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: Device = "auto"
    # Place a model larger than one device across GPUs with accelerate: auto, balanced, or
    # an explicit {module name: device} map (docs/scaling.md); None keeps it on model.device.
    device_map: Literal["auto", "balanced"] | dict[str, str | int] | None = None
    track: Literal["full", "lora"] = "lora"
    lora: LoraConfig = Field(default_factory=LoraConfig)


class ZOConfig(Section):
    eps: Float = Field(1e-3, gt=0)
    directions: Int = Field(1, ge=1)
    micro_batch: Int = Field(32, ge=1)
    # padded tokens per micro-batch at most; auto: 512 on CPU (short sentences are not
    # padded to a long one's length); on CUDA as many as free memory allows, with no row
    # cap (paczero.engine.batch_budget); no cap on other accelerators
    micro_batch_tokens: Int | Literal["auto", "off"] = "auto"
    restore: Literal["auto", "exact", "fused"] = "auto"

    @field_validator("micro_batch_tokens")
    @classmethod
    def _positive_tokens(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("must be a positive integer, 'auto' or 'off'")
        return value


class TrainConfig(Section):
    steps: Int = Field(1000, ge=1)
    lr: Float = Field(1e-6, gt=0)
    schedule: Literal["constant", "linear"] = "constant"
    batch_size: Int | Literal["full"] = 16
    eval_every: Int = Field(0, ge=0)
    checkpoint_every: Int = Field(0, ge=0)
    # "none": no tensors while training (a zeroth-order run is theta_0 plus its release log:
    # resume and export replay it); the model is written once, at the end
    checkpoints: Literal["tensors", "none"] = "tensors"
    eval_batch: Int = Field(32, ge=1)
    eval_at_start: Bool = True
    # experiment tracking (paczero.tracking): public per-step figures and evaluations
    report_to: list[Literal["tensorboard", "wandb", "trackio"]] = Field(default_factory=list)
    # the released model: dev-best (picked by the dev rows) or final; auto: final when the
    # dev rows come from the private source (data.train), dev-best otherwise
    select: Literal["auto", "final", "dev-best"] = "auto"

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


class SeedConfig(Section):
    public: Seed = 0
    secret: Seed | None = None


class AuditConfig(Section):
    """Canaries for `paczero audit` (docs/audit.md 4): m examples, each included in the pool
    with probability 1/2 from the secret stream; the inclusion stays under private/."""

    canaries: Int = Field(0, ge=0)
    canary_file: Text | None = None  # JSON Lines of canary examples (default: built in)


class RunConfig(Section):
    description: str = ""
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(default_factory=TaskConfig, validate_default=True)
    data: DataConfig = Field(default_factory=DataConfig)
    zo: ZOConfig = Field(default_factory=ZOConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    mechanism: MECHANISM = Field(default_factory=lambda: REGISTRY[DEFAULT_MECHANISM].Config())
    seed: SeedConfig = Field(default_factory=SeedConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    _mechanism: type[Mechanism] = PrivateAttr()  # set by validation (``mechanism_type``)

    @property
    def mechanism_type(self) -> type[Mechanism]:
        """The class of ``mechanism.name``, looked up once, when the config was validated."""
        return self._mechanism

    @model_validator(mode="before")
    @classmethod
    def _defaults_that_fit(cls, data: Any) -> Any:
        """Defaults that fit the data: the sizes of one's own files (``DataConfig``), then
        the pool's M and batch, and a small file's steps and learning rate."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if isinstance(data.get("data"), dict):
            data["data"] = sized_to_own_files(data["data"])
        pool = _pool_units(data)
        data["mechanism"] = _private_by_default(data.get("mechanism"), pool)
        data["train"] = _train_defaults(data, pool)
        return data

    @field_validator("task")
    @classmethod
    def _task_fits_its_type(cls, task: TaskConfig) -> TaskConfig:
        """The preset's or the type's defaults and checks (the registry's)."""
        return registry.checked(task)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        pool = self.data.num_train
        batch = self.train.batch_size
        if isinstance(batch, int) and batch > pool:
            raise ValueError(
                f"train.batch_size ({batch}) is larger than the pool data.num_train ({pool})"
            )
        registry.check_run_task(self.task, self.data)
        if self.train.select == "auto":  # resolved once: config.yaml says which
            private = dev_from_private_source(self.data)
            self.train.select = "final" if private else "dev-best"
        task = self.task
        tokens = self.zo.micro_batch_tokens
        if isinstance(tokens, int) and tokens < task.max_length:
            raise ValueError(
                f"zo.micro_batch_tokens ({tokens}) is below task.max_length "
                f"({task.max_length}): a micro-batch must hold one whole sequence; use at "
                f"least {task.max_length}, 'auto' or 'off'"
            )
        cls = self._mechanism = mechanism_class(self.mechanism.name)
        if self.train.checkpoints == "none":
            if self.train.checkpoint_every:
                raise ValueError(
                    "train.checkpoint_every writes tensors, train.checkpoints none writes "
                    "none: set only one"
                )
            if not cls.replayable:
                raise ValueError(
                    f"{cls.name} releases whole gradients: its release log cannot rebuild "
                    "the model, so train.checkpoints none would leave a run that cannot be "
                    "resumed or exported; use train.checkpoints tensors"
                )
        cls.check_config(
            self.mechanism, pool_size=pool, steps=self.train.steps, directions=self.zo.directions
        )
        cls.check_run(self)
        from paczero.selection import check_selectable

        check_selectable(self.task, cls)
        return self

    def public_dict(self) -> dict[str, Any]:
        """The config as every public file shows it: all keys but the secret seed, which
        would let anyone recompute S* and every noise draw (it lives in private/)."""
        data = self.model_dump(mode="json")
        data["seed"].pop("secret", None)
        if self.task.type is not None:  # a task of one's own has its prompt, no template
            data["task"].pop("template", None)
        return data

    def to_yaml(self) -> str:
        """config.yaml of a run: ``public_dict``."""
        return yaml.safe_dump(self.public_dict(), sort_keys=False)


def _private_by_default(section: Any, pool: int) -> Any:
    """A config that names no mechanism runs PACZero-ZPL (private by default); only one
    that names a non-private mechanism runs without privacy. A mechanism over candidate
    subsets whose M is not given gets the largest even M <= min(128, pool units)."""
    if section is None:
        section = {}
    if not isinstance(section, dict):
        return section
    section = {"name": DEFAULT_MECHANISM, **section}
    cls = REGISTRY.get(section["name"]) if isinstance(section["name"], str) else None
    if "subsets" not in section and cls is not None and cls.uses_subsets:
        section["subsets"] = default_subsets(pool)
    return section


# A task of one's own on a LoRA model: the examples' steps and learning rate (the 1000
# steps at 1e-6 of the presets are MeZO's full-parameter OPT settings).
OWN_TASK_TRAIN = {"steps": 100, "lr": 0.01}


def _train_defaults(data: dict[str, Any], pool: int) -> Any:
    """``train`` with a batch no larger than the pool, and a small file's steps and
    learning rate for a task of one's own, where not given."""
    section = data.get("train")
    section = {} if section is None else section
    if not isinstance(section, dict):
        return section
    section = dict(section)
    if "batch_size" not in section and pool < TrainConfig.model_fields["batch_size"].default:
        section["batch_size"] = "full"
    task, model = data.get("task"), data.get("model")
    own = isinstance(task, dict) and (task.get("type") or task.get("file"))
    lora = not isinstance(model, dict) or model.get("track", "lora") == "lora"
    if own and lora:
        for key, value in OWN_TASK_TRAIN.items():
            section.setdefault(key, value)
    return section


def _pool_units(data: dict[str, Any]) -> int:
    """data.num_train of a raw config (its default when absent or not yet a number)."""
    section = data.get("data")
    given = section.get("num_train") if isinstance(section, dict) else None
    if isinstance(given, int) and not isinstance(given, bool) and given > 0:
        return given
    return DataConfig.model_fields["num_train"].default


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
        if path.is_dir():
            raise UserError(f"config file {source} is a directory, not a YAML file")
        if not path.is_file():
            raise UserError(f"config file not found: {source}")
        text = read_text(path, "config file", limit=MAX_CONFIG_BYTES)
        if not yaml_mapping(text, source, "sections", "a config"):
            raise UserError(
                f"config file {source} is empty (no keys, only comments or blank lines): name "
                "at least the model and task you mean, e.g. start from examples/tickets.yaml "
                "or `paczero recipes`"
            )
    elif source in recipe_names():
        text = recipe_text(source)
    else:
        hint = _suggest(source, recipe_names())
        raise UserError(f"unknown recipe or config file '{source}'{hint}; see `paczero recipes`")
    return yaml_mapping(text, source, "sections", "a config")


# Paths a config file may give relative to its own folder (examples/tickets.yaml names
# tickets.csv beside it); --set values stay relative to the working directory.
RELATIVE_KEYS = (("task", "file"), ("data", "train"), ("data", "dev"), ("data", "test"))


def resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths of a config file that exist beside it, made absolute."""
    for section, key in RELATIVE_KEYS:
        node = data.get(section)
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            beside = base / value
            if beside.exists():
                node[key] = str(beside.resolve())


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Set ``a.b.c=value`` in a nested mapping; the value is parsed as YAML (numbers, lists)."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set expects key=value, got '{assignment}'")
    try:
        value = parse_yaml(raw, f"--set {key}") if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {key}: '{part}' is a value, not a section")
        node = child
    section = key in RunConfig.model_fields and key != "description"
    if not raw.strip() and (section or isinstance(node.get(parts[-1]), dict)):
        raise UserError(  # else the whole section would silently fall back to its defaults
            f"--set {key}= is empty: {key} is a section; set its keys instead "
            f"(--set {key}.KEY=VALUE)"
        )
    node[parts[-1]] = value


def apply_overrides(
    data: dict[str, Any], overrides: list[str] | tuple[str, ...], *, own_keys_only: bool = False
) -> dict[str, Any]:
    """A copy of ``data`` with the ``key=value`` overrides set, in order.

    An override that changes ``mechanism.name`` starts the new mechanism from the keys it
    reads: the old mechanism's keys the new one has no use for are dropped (a recipe's
    ``mechanism.disagreement`` does not refuse ``--set mechanism.name=mezo``); a foreign key
    set by an override itself is kept, and refused by validation. ``own_keys_only``: a
    run's config.yaml written before each mechanism owned its keys lists every mechanism's
    keys; the run read only its own, and the others are dropped too.
    """
    data = copy.deepcopy(data)
    inherited = data.get("mechanism")
    inherited = dict(inherited) if isinstance(inherited, dict) else {}
    for assignment in overrides:
        apply_override(data, assignment)
    section = data.get("mechanism")
    if not isinstance(section, dict):
        return data
    old = inherited.get("name", DEFAULT_MECHANISM)
    new = section.get("name", DEFAULT_MECHANISM)
    read = [mechanism_keys(old) if own_keys_only else (), mechanism_keys(new) if new != old else ()]
    given = {a.partition("=")[0].strip().removeprefix("mechanism.") for a in overrides}
    for key in list(section):
        if key in inherited and key not in given and any(k and key not in k for k in read):
            del section[key]
    return data


def load_config(
    source: RunConfig | dict[str, Any] | str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> RunConfig:
    """A run's config, built once: ``source`` (a recipe name, a YAML file, a run's own
    config.yaml, a mapping, a ``RunConfig`` or None for the defaults), then ``overrides``
    in order (a recipe's description then names the keys they set); validated."""
    if isinstance(source, RunConfig):
        if not overrides:
            return source
        source = source.model_dump(mode="json")
    if isinstance(source, dict):
        data = source
    else:
        source = None if source is None else str(source)
        data = read_source(source)
        if source is not None and source not in recipe_names():
            resolve_paths(data, Path(source).parent)
        if _is_run_config(source):
            train = data.get("train")
            if isinstance(train, dict):  # a run made before train.select: the dev-best
                train.setdefault("select", "dev-best")
            return validate_config(apply_overrides(data, overrides, own_keys_only=True))
    described = data.get("description")
    data = apply_overrides(data, overrides)
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
        raise UserError(one_line_error(err)) from None


_TYPE_STEPS = {"int", "float", "str", "bool", "list", "dict", "none"}  # pydantic union members


def one_line_error(err: ValidationError, names: dict[str, str] | None = None) -> str:
    """The first error as one line naming the key (``names`` maps fields to option names,
    e.g. ``micro_batch`` to ``--micro-batch``)."""
    first = err.errors()[0]
    parts = [str(p) for p in first["loc"]]
    mechanism = None  # the mechanism whose section the error is in (its name is in the loc)
    if len(parts) > 1 and parts[0] == "mechanism" and names is None:
        mechanism = parts.pop(1)
    loc = ".".join(p for p in parts if "[" not in p and p not in _TYPE_STEPS)
    if names is not None:
        loc = names.get(loc, loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        parent, _, leaf = loc.rpartition(".")
        if mechanism is not None:
            keys = mechanism_keys(mechanism)
            owners = [n for n in REGISTRY if leaf in mechanism_keys(n)]
            hint = _suggest(leaf, list(keys)) or (
                f" (a key of {', '.join(owners)}; {mechanism} reads {', '.join(keys)})"
                if owners
                else f" ({mechanism} reads {', '.join(keys)})"
            )
            return f"unknown config key '{loc}' for mechanism '{mechanism}'{hint}"
        hint = _suggest(leaf, _known_keys(parent))
        return f"unknown config key '{loc}'{hint}"
    if kind == "union_tag_invalid" and loc == "mechanism":
        tag = first["ctx"]["tag"]
        return (
            f"invalid value for 'mechanism.name': unknown mechanism '{tag}'; choose one of "
            f"{', '.join(REGISTRY)}"
        )
    msg = " ".join(first["msg"].removeprefix("Value error, ").split())
    if kind in ("value_error", "assertion_error") and (not loc or loc == "mechanism"):
        return f"invalid {'arguments' if names is not None else 'config'}: {msg}"
    got = first.get("input")
    shown = "" if isinstance(got, dict) or got is None else f" (got {_short(got)})"
    return f"invalid value for '{loc}': {msg}{shown}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
