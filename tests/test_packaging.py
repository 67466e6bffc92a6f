"""House tidying (issue #17 item 7): `cli` imports `bench`, never the reverse; the bench's
reference-style step ships in the package, so an installed wheel finds it."""

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "paczero"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_module_but_the_entry_points_imports_the_cli():
    importers = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "paczero.cli" in _imports(path) and path.name not in ("cli.py", "__main__.py")
    ]
    assert importers == []
    assert "paczero.bench" in _imports(PACKAGE / "cli.py")


def test_importing_the_bench_does_not_load_the_cli():
    code = "import sys, paczero.bench, paczero.bench.parallel; print('paczero.cli' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_bench_finds_its_reference_step_when_installed_from_a_wheel(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("paczero-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
        assert "paczero/bench/reference_step.py" in archive.namelist()
    elsewhere = tmp_path / "elsewhere"  # no benchmarks/ folder anywhere near
    elsewhere.mkdir()
    code = (
        "import paczero, paczero.bench.timing as b; m = b.load_reference(); "
        "print(paczero.__file__); print(m.__file__ if m else None); print(hasattr(m, 'from_task'))"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    package, reference, has = done.stdout.split()
    assert package.startswith(str(tmp_path / "site"))  # the installed copy, not src/
    assert reference.startswith(str(tmp_path / "site")) and has == "True"
