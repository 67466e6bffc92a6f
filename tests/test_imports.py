"""The layers of src/paczero: no import cycle among paczero's modules.

Every import counts, at module level, inside a function (a function-level import that
dodges a cycle is still a cycle) or under ``if TYPE_CHECKING:`` (a type named by a module
below it is a tie upwards all the same: the two can be neither read nor changed apart).
A package's ``__init__`` importing its own submodules is not an edge back from them: Python
runs the parent package first, so ``from paczero.mechanisms.base import X`` needs nothing of
``paczero.mechanisms`` beyond what ``base`` itself imports.
"""

import ast
from pathlib import Path

import paczero

SRC = Path(paczero.__file__).parent


def modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = ["paczero", *path.relative_to(SRC).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The paczero modules ``name`` imports (a name imported from a package, when it is a
    submodule, counts as that submodule)."""

    def owner(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {owner(a.name) for a in node.names if a.name.startswith("paczero")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base.startswith("paczero"):
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in known else owner(base))
    found.discard(None)
    found.discard(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_no_import_cycle_among_paczero_modules():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_sees_function_level_and_type_only_imports(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    known = modules()
    tree_imports = imports("paczero.cli", known["paczero.cli"], known)
    assert "paczero.durable" in tree_imports  # imported inside a command's function
    typed = tmp_path / "typed.py"
    typed.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from paczero.tasks.options import TaskConfig\n"
    )
    assert imports("paczero.typed", typed, known) == {"paczero.tasks.options"}


def test_the_task_options_sit_below_the_tasks_that_read_them():
    """The task and data sections are plain schemas: the registry, built from the task
    types that read those sections, checks them, never the reverse."""
    edges = graph()
    assert not {d for d in edges["paczero.tasks.options"] if d.startswith("paczero.tasks")}
    assert "paczero.tasks.options" in edges["paczero.tasks.registry"]


def test_the_bottom_layer_and_the_plug_ins_import_nothing_above_them():
    edges = graph()
    for low in ("paczero.values", "paczero.errors", "paczero.textfiles", "paczero.guarantee"):
        assert edges[low] <= {"paczero.errors", "paczero.textfiles"}, (low, edges[low])
    for name, deps in edges.items():
        if name.startswith(("paczero.privacy", "paczero.mechanisms", "paczero.tasks")):
            assert "paczero.config" not in deps, name  # config composes them, not the reverse
