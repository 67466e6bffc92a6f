"""Metrics of a run's dev-best model, an exported model, or a base model (zero-shot)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from paczero import progress
from paczero.config import RunConfig, load_config
from paczero.errors import UserError
from paczero.models import LoadedModel, load_model
from paczero.privacy.randomness import public_stream
from paczero.runs import new_output_file, notice, read_json, write_jsonl
from paczero.selection import chosen_task
from paczero.session import build_task_for
from paczero.tasks import load_splits
from paczero.tasks.base import row_records
from paczero.tasks.options import DataConfig
from paczero.tasks.own_data import SIZE_KEYS


def evaluate(
    target: str | Path,
    split: str = "test",
    overrides: list[str] | tuple[str, ...] = (),
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Metrics of a run's dev-best model, an exported model, or a base model (zero-shot);
    with ``out``, each row's prediction beside its label, as JSON Lines (a new file)."""
    out_path = new_output_file(out) if out is not None else None
    cfg, weights = load_target(target, overrides)
    return evaluate_config(cfg, split, weights, out=out_path)


Weights = Callable[[LoadedModel], torch.nn.Module]


def load_target(
    target: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    rows: str | None = None,
    trained: bool = True,
) -> tuple[RunConfig, Weights]:
    """The config and the weights of what ``paczero eval`` and ``paczero predict`` name: a
    run directory (its released model), an export folder, or a base model (zero-shot; a
    task of one's own then reads ``rows`` unless ``data.train`` is set). ``trained``: the
    weights will be used (an unfinished run has no released model: refused)."""
    target = Path(target)
    run_config, exported = target / "config.yaml", target / "paczero_export.json"
    if run_config.exists():
        if trained and not (target / "result.json").exists():  # no released model yet
            raise UserError(
                f"{target} has not finished (no result.json): continue it with paczero resume "
                f"{target}, or export a logged step (paczero export {target} --step N --to "
                "DIR) and use that"
            )
        cfg = load_config(str(run_config), overrides)
        check_fixed(load_config(str(run_config)), cfg, target)  # task.* included
        # the prompt the run trained with (a selection's choice, paczero.selection)
        cfg = cfg.model_copy(update={"task": chosen_task(cfg.task, target)})
    elif exported.exists():
        info = read_json(exported, "export description")
        _check_export_weights(target, info)
        schema = rows_schema(rows, overrides)
        cfg = load_config(_export_config(target, info), [*schema, *overrides])
        check_fixed(load_config(_export_config(target, info), schema), cfg, target)
    elif target.is_dir() and not (target / "config.json").exists():
        raise UserError(
            f"{target} holds no run (config.yaml), export (paczero_export.json) or "
            "Hugging Face model (config.json)"
        )
    else:
        schema = rows_schema(rows, overrides)
        cfg = load_config(None, [f"model.name={target}", *schema, *overrides])

    def weights(loaded: LoadedModel) -> torch.nn.Module:
        if run_config.exists():
            from paczero.durable import released_into

            released = "final" if cfg.train.select == "final" else "best"
            released_into(target, cfg, loaded, released)
        elif exported.exists() and info["track"] == "lora":
            from peft import PeftModel

            return PeftModel.from_pretrained(loaded.model, target)
        return loaded.model

    return cfg, weights


def rows_schema(rows: str | None, overrides: list[str] | tuple[str, ...]) -> list[str]:
    """``data.train=ROWS`` where ``predict`` names rows and no ``data.train`` is set: a task
    of one's own needs a data source, and the rows give it its schema (they are not sized
    as a training file would be)."""
    keys = {o.partition("=")[0].strip() for o in overrides}
    if rows is None or "data.train" in keys:
        return []
    sizes = [f"data.{k}={DataConfig.model_fields[k].default}" for k in SIZE_KEYS]
    return [f"data.train={rows}", *(s for s in sizes if s.partition("=")[0] not in keys)]


def _check_export_weights(target: Path, info: dict[str, Any]) -> None:
    """An export folder missing its weights is named as such, before any config is read."""
    lora = info.get("track") == "lora"
    needed = "adapter_config.json" if lora else "config.json"
    if not (target / needed).is_file():
        raise UserError(f"export folder {target} has no {needed}: export the run again")
    stem = "adapter_model" if lora else "model"
    patterns = (f"{stem}*.safetensors", f"{stem}*.bin", "pytorch_model*.bin")
    index = next(target.glob(f"{stem}*.index.json"), None)
    if index is not None:  # sharded: every shard its index names
        shards = sorted(set(read_json(index, "weights index").get("weight_map", {}).values()))
        missing = [name for name in shards if not (target / name).is_file()]
        if missing:
            raise UserError(f"export folder {target} has no {missing[0]} (a weights shard)")
    elif not any(p.is_file() for pattern in patterns for p in target.glob(pattern)):
        raise UserError(
            f"export folder {target} has no {stem}.safetensors (its weights): export the run again"
        )


# What a trained model was trained with: another value would score it on another model or
# with other label words (keys under these sections, except the placement keys below)
FIXED = ("model.", "task.")
MOVABLE = ("model.device", "model.dtype", "model.device_map")


def check_fixed(trained: RunConfig, asked: RunConfig, target: Path) -> None:
    """``--set`` may move a trained model (device, dtype) and point it at other data; not
    change the model or the task it was trained for."""
    before, after = _flat(trained.public_dict()), _flat(asked.public_dict())
    for key in sorted(set(before) | set(after)):
        fixed = key.startswith(FIXED) and not key.startswith(MOVABLE)
        if fixed and before.get(key) != after.get(key):
            raise UserError(
                f"{key} is fixed for {target}: its model was trained with {key} = "
                f"{before.get(key)!r}; evaluate a base model (zero-shot) or another run instead"
            )


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def evaluate_config(
    cfg: RunConfig,
    split: str = "dev",
    weights: Weights = lambda loaded: loaded.model,
    out: Path | None = None,
) -> dict[str, Any]:
    """Metrics of ``cfg``'s model on one of its splits: zero-shot unless ``weights`` puts
    trained weights in (the demo compares prompt templates with it)."""
    public = public_stream(cfg.seed.public)
    splits = load_splits(cfg.task, cfg.data)
    loaded = load_model(cfg.model, seed=public.seed("model-init"))
    model = weights(loaded)
    task = build_task_for(cfg, loaded)
    rows = splits.test if split == "test" else splits.dev
    encoded = task.encode(rows)
    with progress.phase(f"{split} evaluation"):  # a bar on a terminal, lines in a log
        metrics, predicted = task.evaluate_rows(model, encoded, cfg.train.eval_batch)
    if out is not None:
        private = bool(getattr(splits, f"{split}_from_pool_source"))
        write_jsonl(
            out, row_records(task.inputs(rows), predicted), mode=0o600 if private else 0o644
        )
        if private:
            notice(
                f"{out} holds {split} rows carved from the pool's own (private) source, "
                "outside the guarantee: written readable by you only (mode 0600); keep it "
                "where the private data is"
            )
    return {**metrics, "examples": len(encoded), "split": split}


def _export_config(target: Path, info: dict[str, Any]) -> dict[str, Any]:
    """The config that rebuilds an export's base exactly as the run built it: the model's
    dtype, the run's ``seed.public`` (a seed-built tiny model's weights come from it) and
    its task."""
    try:
        track, base = info["track"], info["base_model"]
        model = dict(info.get("model") or {})
        task = dict(info.get("task") or {})
        task.pop("file", None)  # the spec is written out whole; the file may be elsewhere
        seed = int(info.get("seed_public", 0))
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{target / 'paczero_export.json'} is damaged") from None
    dtype = model.get("dtype", "auto")
    if dtype == "auto" and track == "lora":
        dtype = "float32"  # what "auto" gave the LoRA run; the base loads as "full" here
    data: dict[str, Any] = {
        "model": {"name": base if track == "lora" else str(target), "track": "full"},
        "task": task,
        "seed": {"public": seed},
    }
    data["model"]["dtype"] = dtype
    return data
