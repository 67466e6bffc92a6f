"""The options of `paczero privacy` and `paczero bench`, checked like config keys.

Their numbers go through the same value types as the run config (``values.py``), so every
command refuses inf, nan, true and out-of-range values alike, in one line that names the
option (``--micro-batch``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from paczero.config import one_line_error
from paczero.errors import UserError
from paczero.values import LOG2, Device, Float, Int, Section, Text


class PrivacyArgs(Section):
    """`paczero privacy`: one MI budget or one DP epsilon."""

    mi: Float | None = None
    epsilon: Float | None = None
    delta: Float = Field(0.0, ge=0, lt=1)

    @field_validator("epsilon")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError(
                "must be > 0: epsilon 0 is an output that ignores the data, there is no "
                "budget to convert"
            )
        return value

    @field_validator("mi")
    @classmethod
    def _below_log2(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError("must be >= 0 nats")
        if value is not None and not value < LOG2:
            raise ValueError(
                f"must be below log 2 = {LOG2:.4f} nats: whether one example is in S* is a "
                "fair coin, worth log 2 nats, so a larger budget bounds no attacker (the bound "
                "is 1, no protection)"
            )
        return value

    @model_validator(mode="after")
    def _one_of(self) -> PrivacyArgs:
        if (self.mi is None) == (self.epsilon is None):
            raise ValueError("give exactly one of --mi NATS or --epsilon E")
        return self


def _json_target(value: str | None) -> str | None:
    if value is None:
        return value
    path = Path(value)
    if path.is_dir():
        raise ValueError("is a directory; give a file path for the JSON report")
    if path.exists() or path.is_symlink():
        raise ValueError(f"{value} exists; choose another name or remove it first")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"cannot be written: {parent} is a file, not a directory")
            break
    return value


class BenchArgs(Section):
    """`paczero bench` options (the run config they build is validated as a config)."""

    model_config = ConfigDict(extra="ignore")

    model: Text
    track: Literal["lora", "full"]
    pool: Int = Field(ge=2)
    mechanism: Text
    subsets: Int | None = Field(None, ge=2)
    dtype: Literal["auto", "float32", "bfloat16", "float16"]
    device: Device
    micro_batch: Int = Field(ge=1)
    repeats: Int = Field(ge=1)
    warmup: Int = Field(ge=0)
    threads: Int | None = Field(None, ge=1)
    nproc: Int = Field(1, ge=1)
    json_path: Annotated[Text | None, AfterValidator(_json_target)] = None


def validate_options(model: type[Section], values: dict[str, Any]) -> Section:
    """Command-line options through ``model``; errors name the option (``--micro-batch``)."""
    fields = set(model.model_fields)
    names = {name: "--" + name.replace("_", "-") for name in fields}
    names["json_path"] = "--json"
    try:
        return model.model_validate({k: v for k, v in values.items() if k in fields})
    except ValidationError as err:
        raise UserError(one_line_error(err, names)) from None
