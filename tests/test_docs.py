"""The documentation site builds with --strict (issue #33 item 7): a broken link between
pages, a missing anchor or a bad API reference fails the suite, as `make docs` would. MkDocs
comes with the dev extra, so a missing install fails here too."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config)]
    return subprocess.run(
        [*command, "-d", str(site)], capture_output=True, text=True, timeout=300, env=env
    )


def test_the_site_builds_with_strict(tmp_path):
    done = _build(REPO / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("ZOOptimizer", "load_config", "privacy_report", "build_task", "mi_to_epsilon"):
        assert name in api  # the reference is generated from the docstrings
    pages = {p.stem for p in (REPO / "docs").glob("*.md")} - {"index"}
    assert pages <= {p.name for p in (tmp_path / "site").iterdir()}


def test_a_broken_link_fails_the_build(tmp_path):
    """The same settings, on two pages one of which links to a page that does not exist."""
    settings = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the other page](other.md#usage).\n")
    (docs / "other.md").write_text("# Other\n\nSee [a lost page](lost.md).\n")
    settings.update(docs_dir=str(docs), nav=["index.md", "other.md"], plugins=["search"])
    settings.pop("hooks", None)
    config = tmp_path / "mkdocs.yml"
    config.write_text(yaml.safe_dump(settings))
    done = _build(config, tmp_path / "site")
    assert done.returncode != 0
    assert "lost.md" in done.stderr and "#usage" in done.stderr  # the page and the anchor


def test_every_privacy_invariant_names_tests_that_exist():
    """docs/design.md's invariants each cite the tests that check them; a renamed or
    deleted test makes the list false, so it fails here."""
    text = (REPO / "docs" / "design.md").read_text()
    section = text.split("## Privacy invariants", 1)[1].split("\n## ", 1)[0]
    items = re.split(r"^\d+\. ", section, flags=re.M)[1:]
    assert len(items) >= 9
    for item in items:
        cited = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", item)
        assert cited, item[:80]
        for path, name in cited:
            tree = ast.parse((REPO / path).read_text())
            names = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
            assert name in names, f"{path}::{name}"
