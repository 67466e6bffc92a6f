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

from paczero.report import describe_privacy, dp_batch_text, dp_denominator_text

TASK_DATASETS = {"sst2": "nyu-mll/glue", "squad": "rajpurkar/squad"}
TASK_WORDS = {"sst2": "SST-2 sentiment classification", "squad": "SQuAD v1.1 question answering"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(name: str | None) -> bool:
    return bool(name) and bool(HUB_ID.fullmatch(str(name))) and not str(name).startswith(".")


def metadata(info: dict[str, Any], cfg: dict[str, Any], privacy: dict[str, Any]) -> dict:
    """The card's YAML header (Hub model-card metadata)."""
    base = info.get("base", {})
    framework = privacy.get("framework", "none")
    tags = ["paczero", "zeroth-order", "private-fine-tuning"]
    tags += {"pac": ["pac-privacy"], "dp": ["differential-privacy"]}.get(framework, [])
    if info.get("trained_track") == "lora":
        tags.append("lora")
    task = cfg["task"]["name"]
    tags.append(task)
    data: dict[str, Any] = {}
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
    return data


def plain_words(privacy: dict[str, Any], pool: int | None) -> str:
    """The guarantee in plain words, from the report's fields (the framework decides)."""
    framework = privacy.get("framework", "none")
    pool_text = f"the {pool} examples of the private pool" if pool else "the private pool"
    if framework == "pac":
        bound = float(privacy.get("mi_bound") or 0.0)
        size = f" ({pool} examples)" if pool else ""
        lead = (
            f"The private pool{size} was split at random into candidate halves and one half, "
            "S*, was secretly chosen for training; the candidate halves are public."
        )
        if bound == 0.0:
            return (
                f"{lead} The released updates, and so this model, are exactly as likely "
                "whichever half was chosen: I(S*; releases) = 0. Nobody, even knowing every "
                "pool example and every candidate half, can tell better than a coin flip "
                "(0.5) whether an example was in the training half."
            )
        return (
            f"{lead} Everything released (and so this model) reveals at most {bound:g} nats "
            "about which half it was: I(S*; releases) <= "
            f"{bound:g}, the budget, whatever path the run took. Nobody can guess whether "
            "an example was in the training half with probability above "
            f"{float(privacy['posterior_bound']):.4f} (a coin flip is 0.5); that is the "
            f"bound of a DP epsilon of {float(privacy['matched_epsilon']):.3g}."
        )
    if framework == "dp":
        spent = privacy.get("spent") or {}
        relation, _, detail = str(privacy.get("neighbouring_relation", "stated")).partition(";")
        detail = f" ({detail.strip()})" if detail.strip() else ""
        return (
            f"({float(spent.get('epsilon', 0.0)):.4g}, {float(spent.get('delta', 0.0)):g})-"
            f"differential privacy for each of {pool_text}, under the {relation.strip()} "
            f"relation{detail}: the model is almost as likely whether any one example was in "
            "the pool or not. No attacker "
            "guesses whether an example was in the pool with probability above "
            f"{float(privacy['posterior_bound']):.4f} (prior 0.5)."
        )
    return (
        "No privacy guarantee: this run's mechanism released data-dependent values "
        "unprotected (a non-private baseline)."
    )


def _covers(privacy: dict[str, Any], splits: dict[str, Any]) -> str:
    framework = privacy.get("framework", "none")
    if framework == "none":
        return "Nothing: there is no guarantee."
    dev, test = splits.get("dev"), splits.get("test")
    data = privacy.get("data") or {}
    if splits.get("provenance") == "dev-derived":
        where = "the same article-level split of the SQuAD dev file as the pool"
    elif splits.get("provenance") != "own data":
        where = "the task's train split, disjoint from the pool"
    elif data.get("dev_from_pool_source", True):
        where = "the pool's own file (data.train), disjoint from the pool"
    else:
        where = "a file of its own (data.dev or data.test), outside the pool's source"
    example = "pool example"
    if data.get("unit") == "group":  # user-level: a unit is all the rows of one user
        example = f"pool unit (the rows sharing data.group_field '{data.get('unit_field')}')"
    what = (
        f"membership of each {example} in the secret training half S*, against an "
        "attacker who knows the pool and the candidate halves"
        if framework == "pac"
        else f"the presence in the pool of each {example} (the secret Poisson samples "
        "were drawn from it)"
    )
    return (
        f"The private pool only: {what}. It does not hide that the pool as a whole shaped "
        f"the model. The dev set ({dev} examples, from {where}), which picks the run's "
        "dev-best step (the default export), is **not** covered; the test set "
        f"({test} examples) only measured the figures below. The base model's own training "
        "data is outside the guarantee."
    )


def _prompt_of(task: dict[str, Any]) -> str:
    """A preset's template, or a task of one's own's type and prompt."""
    if task.get("type"):
        return f"{task['type']}, prompt `{task.get('prompt')!r}`"
    return f"template `{task['template']}`"


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


def _fmt(value: Any, spec: str = ".4g") -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return format(value, spec)


def privacy_rows(privacy: dict[str, Any]) -> list[tuple[str, Any]]:
    framework = privacy.get("framework", "none")
    rows: list[tuple[str, Any]] = [("mechanism", f"`{privacy.get('mechanism')}`")]
    if framework == "pac":
        bound = privacy.get("mi_bound")
        rows += [
            ("guarantee", f"I(S*; releases) <= {bound:g} nats" if bound else "I(S*; releases) = 0"),
            ("budget", f"{_fmt(privacy.get('budget'), 'g')} nats"),
            ("MI bound", f"{_fmt(bound, 'g')} nats"),
            ("membership-inference bound", _fmt(privacy.get("posterior_bound"))),
            ("matched DP epsilon", _fmt(privacy.get("matched_epsilon"), ".3g")),
            ("candidate subsets M", privacy.get("subsets")),
        ]
        charged = (privacy.get("spent") or {}).get("charged")
        if bound:
            rows.append(("charges summed on this run's path", f"{_fmt(charged)} nats (not the MI)"))
    elif framework == "dp":
        spent = privacy.get("spent") or {}
        budget = privacy.get("budget") or {}
        rows += [
            ("guarantee", f"({_fmt(spent.get('epsilon'))}, {_fmt(spent.get('delta'), 'g')})-DP"),
            (
                "budget (target)",
                f"epsilon {_fmt(budget.get('epsilon'), 'g')}, "
                f"delta {_fmt(budget.get('delta'), 'g')}",
            ),
            ("epsilon spent", _fmt(spent.get("epsilon"))),
            ("neighbouring relation", privacy.get("neighbouring_relation")),
            ("accountant", privacy.get("accountant")),
            ("noise multiplier", _fmt(privacy.get("noise_multiplier"))),
            ("batch", dp_batch_text(privacy)),
            ("denominator", dp_denominator_text(privacy)),
            ("membership-inference bound", _fmt(privacy.get("posterior_bound"))),
            ("matched MI", f"{_fmt(privacy.get('matched_mi'))} nats"),
        ]
    else:
        rows.append(("guarantee", "none"))
    if privacy.get("unanimity_fraction") is not None:
        rows.append(("unanimous releases", f"{100 * privacy['unanimity_fraction']:.1f}%"))
    rows.append(("steps (releases)", f"{privacy.get('steps')} ({privacy.get('releases')})"))
    rows.append(("secret source", privacy.get("secret_source")))
    return rows


def render(
    info: dict[str, Any],
    cfg: dict[str, Any],
    result: dict[str, Any] | None,
    privacy: dict[str, Any],
) -> str:
    """README.md: YAML metadata, then the privacy section, evaluation, training, use and
    verification."""
    meta = metadata(info, cfg, privacy)
    base = info.get("base", {})
    task = cfg["task"]["name"]
    metrics = (result or {}).get("metrics", {})
    splits = metrics.get("splits") or {
        "pool": cfg["data"]["num_train"],
        "dev": cfg["data"]["num_dev"],
        "test": cfg["data"]["num_test"],
    }
    pool = splits.get("pool")
    mech = cfg["mechanism"]["name"]
    base_name = base.get("hub_id") or PurePath(str(base.get("id") or info["base_model"])).name
    track = "LoRA adapter" if info["track"] == "lora" else "full model"
    if info.get("merged"):
        track = "full model (LoRA merged into the base)"
    lines = [
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
        "",
        "## Privacy",
        "",
        plain_words(privacy, pool),
        "",
        f"**What it covers.** {_covers(privacy, splits)}",
        "",
        *_table(privacy_rows(privacy)),
        "",
    ]
    if info.get("privacy_note"):
        lines += [f"*{info['privacy_note']}*", ""]
    lines += [
        "The report as paczero prints it:",
        "",
        "```text",
        describe_privacy(privacy),
        "```",
        "",
        "## Evaluation",
        "",
    ]
    metric = metrics.get("metric")
    test = metrics.get("test")
    if test and metric:
        best = metrics.get("best_step")
        lines += ["| split | step | " + " | ".join(k for k in test) + " |"]
        lines += ["|---|---|" + "---|" * len(test)]
        lines += [
            f"| test ({splits.get('test')}) | {best} | "
            + " | ".join(_fmt(v) or "-" for v in test.values())
            + " |"
        ]
        for point in metrics.get("dev_history", []):
            if point.get("step") in (best, info["step"]):
                values = [point.get(k) for k in test]
                lines.append(
                    f"| dev ({splits.get('dev')}) | {point['step']} | "
                    + " | ".join(_fmt(v) or "-" for v in values)
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
    train, zo = cfg["train"], cfg["zo"]
    lines += [
        "",
        "## Training",
        "",
        *_table(
            [
                ("base model", f"`{base.get('id', info.get('base_model'))}`"),
                ("base identity", _base_identity(base)),
                ("track", info.get("trained_track", info["track"])),
                (
                    "task",
                    f"{task} ({_prompt_of(cfg['task'])}, objective `{cfg['task']['objective']}`)",
                ),
                (
                    "data",
                    "synthetic"
                    if cfg["data"].get("source") == "synthetic"
                    else _own_data(cfg["data"]) or TASK_DATASETS.get(task),
                ),
                ("pool / dev / test", f"{pool} / {splits.get('dev')} / {splits.get('test')}"),
                ("steps", f"{info['step']} exported of {train['steps']} planned"),
                ("learning rate", f"{train['lr']:g} ({train['schedule']})"),
                (
                    "batch size",
                    f"Poisson, expected {privacy['expected_batch']}"
                    if privacy.get("framework") == "dp" and privacy.get("expected_batch")
                    else train["batch_size"],
                ),
                ("SPSA eps / directions", f"{zo['eps']:g} / {zo['directions']}"),
                ("seed.public", cfg["seed"]["public"]),
            ]
        ),
        "",
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
    return "\n".join(lines)


def _base_identity(base: dict[str, Any]) -> str | None:
    kind = base.get("kind")
    if kind == "hub":
        return f"hub revision `{base.get('revision') or 'unknown'}`"
    if kind == "gguf":
        return f"GGUF `{base.get('gguf_file')}` sha256 `{base.get('gguf_sha256')}`"
    if kind == "local":
        return f"local folder, weights sha256 `{base.get('sha256')}`"
    if kind == "seed-built":
        return f"built in code from seed.public (paczero `{base.get('id')}`)"
    return None


def _usage(info: dict[str, Any], base: dict[str, Any]) -> list[str]:
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
