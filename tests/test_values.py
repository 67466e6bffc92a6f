"""The value types every key shares: finite float32 floats, int64 integers that are not
booleans, true/false booleans, devices; label keys; a YAML file that must be a mapping."""

import pytest
from pydantic import ValidationError

from paczero.errors import UserError
from paczero.values import (
    FLOAT32_MAX,
    INT64_MAX,
    Bool,
    Device,
    Float,
    Int,
    Section,
    label_key,
    yaml_mapping,
)


class Keys(Section):
    f: Float = 0.0
    i: Int = 0
    b: Bool = False
    d: Device = "auto"


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("f", True, "must be a number, not true"),
        ("f", "0.1", "must be a number, not text"),
        ("f", float("inf"), "finite"),
        ("f", 1e300, "float32 range"),
        ("i", 2.0, "whole number"),
        ("i", False, "not false"),
        ("i", 2**63, "64-bit integer"),
        ("b", "yes", "boolean"),
        ("d", "gpu", "auto, cpu, mps, cuda or cuda:N"),
        ("x", 1, "Extra inputs are not permitted"),
    ],
)
def test_each_value_type_refuses_what_it_cannot_hold(key, value, needle):
    with pytest.raises(ValidationError, match=needle):
        Keys(**{key: value})


def test_the_edges_of_each_type_are_accepted():
    keys = Keys(f=-FLOAT32_MAX, i=-INT64_MAX, b=True, d="cuda:1")
    assert (keys.f, keys.i, keys.b, keys.d) == (-FLOAT32_MAX, -INT64_MAX, True, "cuda:1")
    assert Keys(f=3).f == 3.0 and Keys(d="cpu").d == "cpu"
    with pytest.raises(ValidationError):  # assignment is validated too
        keys.i = 1.5


def test_label_values_are_keyed_as_text():
    assert label_key(1) == label_key(1.0) == label_key(" 1 ") == "1"
    assert label_key(True) == "true" and label_key(2.5) == "2.5"
    assert label_key(None) is None and label_key([1]) is None and label_key({"a": 1}) is None


def test_a_yaml_file_must_be_a_mapping():
    assert yaml_mapping("a: 1\n", "t.yaml", "task keys") == {"a": 1}
    assert yaml_mapping("", "t.yaml", "task keys") == {}
    with pytest.raises(UserError, match="^t.yaml: a task file must be a YAML mapping of keys$"):
        yaml_mapping("- a\n- b\n", "t.yaml", "keys")
