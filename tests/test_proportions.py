"""The proportions of the house (issue 33 item 6): no module under src/ over 600 lines and
no function over 80, so that a module keeps one responsibility and a function can be read
at once; a longer one is split where its parts have names of their own."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MODULE_LINES = 600
FUNCTION_LINES = 80


def long_modules(root: Path) -> dict[str, int]:
    """Each module over MODULE_LINES lines, with its length."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > MODULE_LINES:
            out[path.relative_to(root).as_posix()] = lines
    return out


def long_functions(root: Path) -> dict[str, int]:
    """Each function or method over FUNCTION_LINES lines (``def`` to its last line, nested
    functions included), as ``path:line name``, with its length."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > FUNCTION_LINES:
                    out[f"{path.relative_to(root).as_posix()}:{node.lineno} {node.name}"] = lines
    return out


def test_no_module_is_over_600_lines():
    assert long_modules(SRC) == {}


def test_no_function_is_over_80_lines():
    assert long_functions(SRC) == {}


def test_the_limits_find_a_long_module_and_a_long_function(tmp_path):
    method = "".join(f"        x{i} = {i}\n" for i in range(FUNCTION_LINES))  # def + 80
    function = "".join(f"    x{i} = {i}\n" for i in range(FUNCTION_LINES - 1))  # def + 79
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "long.py").write_text(f"class A:\n    def f(self):\n{method}")
    (tmp_path / "short.py").write_text(f"def g():\n{function}")
    (tmp_path / "big.py").write_text("x = 1\n" * (MODULE_LINES + 1))
    assert long_functions(tmp_path) == {"pkg/long.py:2 f": FUNCTION_LINES + 1}
    assert long_modules(tmp_path) == {"big.py": MODULE_LINES + 1}
