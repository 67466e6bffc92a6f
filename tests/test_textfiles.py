"""The one text reader: UTF-8 or one line naming the place; strict YAML."""

import pytest

from paczero.errors import UserError
from paczero.textfiles import MAX_YAML_DEPTH, load_yaml, parse_yaml, read_text


def test_yaml_follows_the_core_schema_and_keeps_each_key_once():
    """true/false only are booleans, 1e-3 is a number, 010 is ten; a repeated key and
    nesting past the limit are one line each (PyYAML alone keeps the last key silently)."""
    values = parse_yaml("[yes, no, on, off, true, False, 1e-3, 010, 0x10, 1:30, .inf, '16']", "x")
    assert values[:6] == ["yes", "no", "on", "off", True, False]
    assert values[6:] == [0.001, 10, 16, "1:30", float("inf"), "16"]
    assert parse_yaml("a: &b {x: 1}\nc: {<<: *b, x: 2}", "x")["c"] == {"x": 2}  # merge keys
    nested = "[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH
    assert parse_yaml(nested, "x") is not None
    with pytest.raises(UserError, match="f.yaml line 1: nesting deeper than 100 levels"):
        parse_yaml("[" + nested + "]", "f.yaml")
    with pytest.raises(UserError, match=r"f.yaml line 3: duplicate key 'b' \(first at line 2\)"):
        parse_yaml("a: 1\nb: 2\nb: 3\n", "f.yaml")


def test_a_byte_that_is_not_utf8_is_named_by_line_column_and_offset(tmp_path):
    path = tmp_path / "rows.tsv"
    path.write_bytes(b"sentence\tlabel\nna\xefve\t1\n")
    with pytest.raises(UserError, match=r"line 2, column 3 \(byte offset 17\): byte 0xef"):
        read_text(path)
    path.write_bytes("\ufeffa: 1\n".encode())
    assert read_text(path) == "a: 1\n"  # the byte-order mark is dropped


def test_a_missing_file_or_a_folder_is_one_line(tmp_path):
    with pytest.raises(UserError, match=r"^config .*nope.yaml not found$"):
        read_text(tmp_path / "nope.yaml", "config")
    with pytest.raises(UserError, match="is a directory, not a file"):
        read_text(tmp_path)


def test_yaml_syntax_errors_are_one_line_only_through_load_yaml():
    with pytest.raises(UserError, match=r"^f.yaml: not valid YAML \(") as err:
        load_yaml("a: [1, 2", "f.yaml")
    assert "\n" not in str(err.value)
    with pytest.raises(Exception, match="expected") as raw:
        parse_yaml("a: [1, 2", "f.yaml")
    assert not isinstance(raw.value, UserError)
