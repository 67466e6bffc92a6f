"""Every snippet of the README runs as written (issue #17 item 6): the Python blocks in
order, in one fresh folder, and the sweep spec resolves."""

import re
from pathlib import Path

import pytest
import yaml

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_readme_has_python_snippets():
    assert len(_blocks("python")) >= 2


def test_every_python_snippet_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PACZERO_PROGRESS", "off")
    for i, code in enumerate(_blocks("python")):
        namespace = {"__name__": f"readme_snippet_{i}"}
        exec(compile(code, f"README.md python block {i}", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "Privacy report (mezo)" in out  # print(result)
    assert (tmp_path / "runs" / "zpl" / "tensorboard").is_dir()
    assert (tmp_path / "out" / "zpl-model" / "README.md").is_file()
    assert re.search(r"(unanimous|coin|skip) [0-9.]+", out)  # the ZOOptimizer loop's print


def test_the_sweep_spec_resolves(tmp_path):
    from paczero.sweep import load_spec

    specs = [b for b in _blocks("yaml") if b.lstrip().startswith("base:")]
    assert specs
    for text in specs:
        spec = yaml.safe_load(text)
        spec["out"] = str(tmp_path / "sweep")
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(spec))
        sweep = load_spec(path)
        assert sweep.runs() and len(sweep.cells) == 5  # 2 lr x 2 training cells + zero-shot


@pytest.mark.parametrize("name", ["mezo-sst2-smollm2-lora"])
def test_the_recipe_named_in_the_snippet_exists(name):
    from paczero.config import recipe_names

    assert name in recipe_names()
