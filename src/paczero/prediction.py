"""`paczero predict`: a fine-tuned model (or a base model, zero-shot) on rows of one's own.

The rows need only the prompt's fields (no label or answer column). Classification writes
each row's predicted label and every label's probability; generation writes the answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paczero import progress
from paczero.errors import UserError
from paczero.evaluation import load_target
from paczero.models import load_model
from paczero.privacy.randomness import public_stream
from paczero.runs import new_output_file, read_json, write_jsonl
from paczero.session import build_task_for
from paczero.tasks.base import row_records
from paczero.tasks.own_data import cell_text, checked_rows, read_table
from paczero.values import label_key


def predict(
    target: str | Path,
    data: str | Path,
    out: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    batch_size: int | None = None,
) -> list[dict[str, Any]]:
    """One record per row of ``data``: ``{"row", "input", "prediction", ...}`` (and, for
    classification, ``probabilities``, and ``label`` and ``correct`` where the row has the
    label column); also written to ``out`` as JSON Lines."""
    out_path = new_output_file(out) if out is not None else None
    cfg, weights = load_target(target, overrides, rows=str(data))
    if batch_size is not None and batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    table = read_table(str(data), "test", cfg.data, key="--data")
    loaded = load_model(cfg.model, seed=public_stream(cfg.seed.public).seed("model-init"))
    model = weights(loaded)
    task = build_task_for(cfg, loaded)
    rows = prompt_rows(table, task)
    encoded = task.encode(rows, labelled=False)
    with progress.phase(f"predicting {len(rows)} rows"):
        predicted = task.predict_rows(model, encoded, batch_size or cfg.train.eval_batch)
    records = row_records(rows, predicted)  # every column travels to the output (ids)
    _mark_labelled(records, task.spec)
    chosen = target_selection(target)
    if chosen is not None:  # the prompt the run selected: the one these predictions used
        records = [{**r, "prompt": chosen["chosen"]} for r in records]
    if out_path is not None:
        write_jsonl(out_path, records)
    return records


def _mark_labelled(records: list[dict[str, Any]], spec: Any) -> None:
    """Rows of a classification task that hold the label column get ``label`` and
    ``correct``, as ``eval --out`` writes them (``accuracy`` sums them up)."""
    field = getattr(spec, "label_field", None)
    if field is None:
        return
    for record in records:
        if field in record["input"]:
            record["label"] = label_key(record["input"][field])
            record["correct"] = record["prediction"] == record["label"]


def accuracy(records: list[dict[str, Any]]) -> tuple[int, int] | None:
    """(rows predicted right, rows with a label), or None when no row has a label."""
    labelled = [r["correct"] for r in records if "correct" in r]
    return (sum(labelled), len(labelled)) if labelled else None


def target_selection(target: str | Path) -> dict[str, Any] | None:
    """How a run's prompt was chosen (``paczero.selection``), for a run directory or an
    export of one that selected its prompt; None otherwise."""
    from paczero.selection import read, summary

    target = Path(target)
    if (target / "config.yaml").exists():
        records = read(target)
        return summary(records) if records else None
    exported = target / "paczero_export.json"
    if exported.exists():
        return read_json(exported, "export description").get("selection")
    return None


def prompt_rows(table: Any, task: Any) -> list[dict]:
    """The table's rows, each checked to hold every field of the task's prompt as text."""
    fields = task.spec.prompt.fields

    def check(row: dict, where: str) -> dict:
        for name in fields:
            cell_text(row[name], f"{where}: column '{name}'")
        return row

    return checked_rows(table, dict.fromkeys(fields, "a field of the task's prompt"), check)
