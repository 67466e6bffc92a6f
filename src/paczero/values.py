"""The bottom layer of the config: value types every section and command-line option share,
the strict YAML mapping reader, and the section base class (unknown keys refused).

Everything above imports these; this module imports nothing of paczero but ``errors`` and
``textfiles`` (the strict YAML reader).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic.types import AllowInfNan

from paczero.errors import UserError
from paczero.textfiles import load_yaml

# ---------------------------------------------------------------- value types
#
# One rule set for every key and every command-line number: floats are finite and fit a
# float32 (they scale float32/float16 tensors), integers are integers (not true/false, not
# 2.0) that fit an int64, booleans are true/false only, and strings come from a fixed list
# wherever the set of meaningful values is known.

FLOAT32_MAX = 3.4028234663852886e38
INT64_MAX = 2**63 - 1
LOG2 = math.log(2.0)


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {str(value).lower()}")
    if isinstance(value, str):  # '16' in quotes is text; a number is written without them
        raise ValueError("must be a number, not text")
    return value


def _integer(value: Any) -> Any:
    _no_bool(value)
    if isinstance(value, float):
        raise ValueError("must be a whole number written without a decimal point")
    return value


def _int64(value: int) -> int:
    if not -INT64_MAX <= value <= INT64_MAX:
        raise ValueError(f"must fit a 64-bit integer (at most {INT64_MAX} in size)")
    return value


def _float32(value: float) -> float:
    if abs(value) > FLOAT32_MAX:
        raise ValueError(f"must be at most {FLOAT32_MAX:.4g} in size (the float32 range)")
    return value


# A finite float that fits float32 (inf, nan, 1e300 and true are refused).
Float = Annotated[float, BeforeValidator(_no_bool), AllowInfNan(False), AfterValidator(_float32)]
# An integer: not a boolean, not a float, at most 64 bits.
Int = Annotated[int, BeforeValidator(_integer), AfterValidator(_int64)]
Bool = StrictBool
Seed = Annotated[int, BeforeValidator(_integer), Field(ge=0, le=INT64_MAX)]
Text = Annotated[str, Field(min_length=1)]
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _device(value: str) -> str:
    if not DEVICE.fullmatch(value):
        raise ValueError("must be auto, cpu, mps, cuda or cuda:N")
    return value


Device = Annotated[str, AfterValidator(_device)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def label_key(value: Any) -> str | None:
    """A label value as text, the way label words are keyed: 1, 1.0 and "1" are "1"."""
    if value is None or isinstance(value, (list, dict)):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def yaml_mapping(text: str, where: str, of: str, what: str = "a task file") -> dict[str, Any]:
    """YAML text that must be a mapping (of ``of``), or one line naming ``where``."""
    data = load_yaml(text, where) or {}
    if not isinstance(data, dict):
        raise UserError(f"{where}: {what} must be a YAML mapping of {of}")
    return data
