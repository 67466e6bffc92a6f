"""Metrics of a run's dev-best model, an exported model, or a base model (zero-shot)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paczero import progress
from paczero.config import load_config
from paczero.data import load_splits
from paczero.models import load_model
from paczero.privacy.randomness import public_stream
from paczero.runs import RunDir
from paczero.session import build_task_for, load_named


def evaluate(
    target: str | Path, split: str = "test", overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Metrics of a run's dev-best model, an exported model, or a base model (zero-shot)."""
    target = Path(target)
    run_config, exported = target / "config.yaml", target / "paczero_export.json"
    if run_config.exists():
        cfg = load_config(str(run_config), overrides)
    elif exported.exists():
        info = json.loads(exported.read_text())
        base = info["base_model"] if info["track"] == "lora" else str(target)
        cfg = load_config(None, [f"model.name={base}", "model.track=full", *overrides])
    else:
        cfg = load_config(None, [f"model.name={target}", *overrides])
    public = public_stream(cfg.seed.public)
    splits = load_splits(cfg.task.name, cfg.data)
    loaded = load_model(cfg.model, seed=public.seed("model-init"))
    model = loaded.model
    if run_config.exists():
        load_named(loaded.trainable, RunDir(target).load_tensors("best"))
    elif exported.exists() and info["track"] == "lora":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, target)
    task = build_task_for(cfg, loaded)
    encoded = task.encode(splits.test if split == "test" else splits.dev)
    with progress.phase(f"{split} evaluation"):  # a bar on a terminal, lines in a log
        metrics = task.evaluate(model, encoded, cfg.train.eval_batch)
    return {**metrics, "examples": len(encoded), "split": split}
