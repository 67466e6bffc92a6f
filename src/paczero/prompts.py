"""`paczero prompt`: the prompt a model reads for a few rows, as it reads it.

A prompt template, the chat template (with its system turn) and truncation all shape what
is scored; this prints the tokens of the first rows decoded back to text, and what is
scored after them (the label words, or the answer).
"""

from __future__ import annotations

from pathlib import Path

from paczero.config import load_config, recipe_names
from paczero.errors import UserError
from paczero.evaluation import load_target, rows_schema
from paczero.models import load_model
from paczero.prediction import prompt_rows
from paczero.privacy.randomness import public_stream
from paczero.session import build_task_for
from paczero.tasks.own_data import read_table


def show_prompts(
    target: str | Path,
    data: str | Path,
    rows: int = 3,
    overrides: list[str] | tuple[str, ...] = (),
) -> str:
    """The first ``rows`` rows of ``data`` as ``target``'s model reads them: a run or export
    folder, a recipe or config file, or a model name (its task from ``overrides``)."""
    if rows < 1:
        raise UserError(f"--rows must be at least 1, got {rows}")
    name = str(target)
    if name in recipe_names() or (Path(name).is_file() and Path(name).suffix in (".yaml", ".yml")):
        cfg = load_config(name, [*rows_schema(str(data), overrides), *overrides])
    else:
        cfg, _ = load_target(target, overrides, rows=str(data), trained=False)
    table = read_table(str(data), "test", cfg.data, key="--data")
    loaded = load_model(cfg.model, seed=public_stream(cfg.seed.public).seed("model-init"))
    task = build_task_for(cfg, loaded)
    shown = prompt_rows(table, task)[:rows]
    encoded = task.encode(shown, labelled=False)
    lines = [f"task {task.describe()}"]
    if cfg.task.chat_template:
        lines.append(f"chat template: on; system turn: {_system_turn(cfg.task, task)}")
    for number, ids in enumerate(encoded.ids, start=1):
        text = loaded.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)
        lines += [f"--- row {number} ({len(ids)} tokens) ---", text]
    return "\n".join(lines)


def _system_turn(section, task) -> str:
    if section.system_prompt is not None:
        return f"{section.system_prompt!r} (task.system_prompt)"
    if task.system == "":
        return (
            "empty (without one, this template writes its own default; task.system_prompt sets it)"
        )
    return "none (task.system_prompt sets one)"
