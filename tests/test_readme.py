"""The README is a true front page (issues #17 item 6, #33 item 7): at most 300 lines, its
snippets run as written, its worked path from a CSV to predictions is the one in
`examples/` and runs; the Python API page's snippets run, and the sweep spec resolves."""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
QUICK = ["model.name=tiny-llama", "train.steps=2", "train.eval_at_start=false", "model.device=cpu"]


def _blocks(language: str, page: Path = README) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", page.read_text(), flags=re.S | re.M)


def _run_python(page: Path, folder: Path, monkeypatch) -> None:
    """Every Python block of a page, in order, in one fresh folder."""
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PACZERO_PROGRESS", "off")
    blocks = _blocks("python", page)
    assert blocks, f"{page.name} has no Python snippet"
    for i, code in enumerate(blocks):
        namespace = {"__name__": f"{page.stem}_snippet_{i}"}
        exec(compile(code, f"{page.name} python block {i}", "exec"), namespace)  # noqa: S102


def test_the_readme_is_a_front_page_of_at_most_300_lines():
    text = README.read_text()
    assert len(text.splitlines()) <= 300
    for heading in ("## The two commands", "## The guarantee, in plain words", "## Mechanisms"):
        assert heading in text
    assert "make demo" in text and "make test" in text
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text)  # dated measurements live in docs/


def test_every_readme_link_into_docs_names_a_page():
    links = re.findall(r"\]\((docs/[^)#]+)", README.read_text())
    assert len(links) >= 10
    for link in links:
        assert (REPO / link).is_file(), link


def test_every_python_snippet_of_the_readme_runs(tmp_path, monkeypatch, capsys):
    _run_python(README, tmp_path / "readme", monkeypatch)
    out = capsys.readouterr().out
    assert "Privacy report (mezo)" in out  # print(result)
    assert (tmp_path / "readme" / "runs" / "demo" / "result.json").is_file()


def test_every_python_snippet_of_the_api_page_runs(tmp_path, monkeypatch, capsys):
    _run_python(DOCS / "python-api.md", tmp_path / "api", monkeypatch)
    out = capsys.readouterr().out
    assert "Privacy report (mezo)" in out  # print(result)
    assert (tmp_path / "api" / "runs" / "zpl" / "tensorboard").is_dir()
    assert (tmp_path / "api" / "out" / "zpl-model" / "README.md").is_file()
    assert re.search(r"(unanimous|coin|skip) [0-9.]+", out)  # the ZOOptimizer loop's print


def test_the_worked_path_shows_the_example_files_as_they_are():
    """The task and run YAML of "From your own CSV to predictions" are examples/' files."""
    task, run = (yaml.safe_load(b) for b in _blocks("yaml") if not b.startswith("base:"))
    assert task == yaml.safe_load((REPO / "examples" / "tickets-task.yaml").read_text())
    on_disk = yaml.safe_load((REPO / "examples" / "tickets.yaml").read_text())
    on_disk.pop("description", None)
    assert run == on_disk
    csv = (REPO / "examples" / "tickets.csv").read_text().splitlines()
    assert "```\n" + "\n".join(csv[:4]) + "\n...\n```" in README.read_text()


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_the_worked_path_trains_and_predicts(tmp_path, monkeypatch):
    """The README's train-then-predict commands, run as written on a tiny model."""
    from paczero.cli import main

    monkeypatch.chdir(REPO)
    (block,) = [b for b in _blocks("bash") if "paczero predict" in b]
    run, predictions = tmp_path / "run", tmp_path / "predictions.jsonl"
    paths = {"runs/tickets": str(run), "predictions.jsonl": str(predictions)}
    for line in block.splitlines():
        args = [paths.get(arg, arg) for arg in shlex.split(line)[1:]]
        if args[0] == "train":
            args += ["--quiet", *(x for key in QUICK for x in ("--set", key))]
        assert main(args) == 0, line
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["input"]["id"] == "t1"
    assert set(rows[0]["probabilities"]) == {"billing", "technical", "sales"}


def test_the_sweep_spec_resolves(tmp_path):
    from paczero.studies.spec import load_spec

    specs = [b for b in _blocks("yaml", DOCS / "sweeps.md") if b.lstrip().startswith("base:")]
    assert specs
    for text in specs:
        spec = yaml.safe_load(text)
        spec["out"] = str(tmp_path / "sweep")
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(spec))
        sweep = load_spec(path)
        assert sweep.runs() and len(sweep.cells) == 5  # 2 lr x 2 training cells + zero-shot


@pytest.mark.parametrize("name", ["mezo-sst2-smollm2-lora", "smoke", "demo"])
def test_the_recipes_named_in_the_docs_exist(name):
    from paczero.config import recipe_names

    assert name in recipe_names()
