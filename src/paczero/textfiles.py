"""One reader for every text file paczero reads: UTF-8 or a one-line error naming the place.

Configs, SST-2 TSVs, SQuAD JSON and the run directory's logs all go through ``read_text``,
so a file with bytes that are not UTF-8 is refused with its path, line and byte offset
instead of a UnicodeDecodeError traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from paczero.errors import UserError

BOM = "\ufeff"


def decode_utf8(data: bytes, where: str | Path) -> str:
    """``data`` as text; a leading byte-order mark is dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        bad = data[err.start : err.start + 1].hex()
        raise UserError(
            f"{where} line {line}, column {column} (byte offset {err.start}): byte 0x{bad} is "
            "not UTF-8; save the file as UTF-8"
        ) from None
    return text.removeprefix(BOM)


def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """The bytes of a file, or one line saying why it cannot be read."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} {path} not found") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a directory, not a file") from None
    except OSError as err:
        raise UserError(f"cannot read {what} {path}: {err.strerror or err}") from None


MAX_CONFIG_BYTES = 1 << 20  # a config or task file is a few kB: a larger one is not one


def read_text(path: str | Path, what: str = "file", limit: int | None = None) -> str:
    """A UTF-8 text file (see ``decode_utf8``), refused above ``limit`` bytes."""
    if limit is not None:
        try:
            size = Path(path).stat().st_size
        except OSError:
            size = 0  # read_bytes says why it cannot be read
        if size > limit:
            raise UserError(
                f"{what} {path} is {size / 2**20:.1f} MB; a {what} is at most "
                f"{limit / 2**20:g} MB (is it the right file?)"
            )
    return decode_utf8(read_bytes(path, what), path)


# ---------------------------------------------------------------- YAML
#
# Every YAML file and --set value paczero reads goes through ``parse_yaml``: a repeated key
# is refused (PyYAML keeps the last one silently, so a second ``train:`` block would drop the
# first one's keys), nesting is capped before the composer recurses (5000 brackets would end
# in a RecursionError), and scalars follow the YAML 1.2 core schema: only true/false are
# booleans (yes, no, on and off stay strings, so a boolean key refuses them), 1e-3 is a
# number (YAML 1.1 read it as text), 010 is ten and 1:30 is text, not 90.

MAX_YAML_DEPTH = 100
BOOL_TAG = "tag:yaml.org,2002:bool"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
CORE_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlRefused(yaml.MarkedYAMLError):
    """Valid YAML syntax that paczero refuses: a repeated key, nesting too deep."""


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with unique keys, bounded nesting and YAML 1.2 booleans."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (BOOL_TAG, INT_TAG, FLOAT_TAG)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlRefused(
                    problem=f"nesting deeper than {MAX_YAML_DEPTH} levels", problem_mark=mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # type: ignore[no-untyped-def]
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: construct_mapping names it below
                continue
            if first is not key_node.start_mark:
                raise YamlRefused(
                    problem=f"duplicate key '{key}' (first at line {first.line + 1}); "
                    "give each key once",
                    problem_mark=key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):  # type: ignore[no-untyped-def]
        text = self.construct_scalar(node)
        if text.startswith(("0o", "0x")):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text)


StrictLoader.add_implicit_resolver(BOOL_TAG, CORE_BOOL, list("tTfF"))
StrictLoader.add_implicit_resolver(INT_TAG, CORE_INT, list("-+0123456789"))
StrictLoader.add_implicit_resolver(FLOAT_TAG, CORE_FLOAT, list("-+.0123456789"))
StrictLoader.add_constructor(INT_TAG, StrictLoader.construct_yaml_int)


def parse_yaml(text: str, where: str | Path) -> Any:
    """YAML text as Python values; a refused document is one line naming ``where``. Syntax
    errors pass through as ``yaml.YAMLError`` (--set falls back to the plain string)."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader)
    except YamlRefused as err:
        line = err.problem_mark.line + 1 if err.problem_mark else "?"
        raise UserError(f"{where} line {line}: {err.problem}") from None


def load_yaml(text: str, where: str | Path) -> Any:
    """``parse_yaml`` with syntax errors turned into one line too."""
    try:
        return parse_yaml(text, where)
    except yaml.YAMLError as err:
        raise UserError(f"{where}: not valid YAML ({str(err).splitlines()[0]})") from None
