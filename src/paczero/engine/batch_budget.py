"""How many padded tokens one micro-batch may hold (``zo.micro_batch_tokens: auto``).

CPU: a fixed 512 (short sentences are not padded to a long one's length; measured on
SmolLM2). CUDA: as many as free memory allows, from the model's activation size per token,
with no fixed sequence cap: a GPU is idle on 64 short sentences. Pure functions of numbers
(free bytes, bytes per token), so the policy is tested without a GPU; the trainer and
``paczero bench``'s floor use the same one.
"""

from __future__ import annotations

from typing import Any

CPU_BATCH_TOKENS = 512  # measured on SmolLM2: pool 32 x1.5, pool 128 x1.1 faster than no cap
MEMORY_FRACTION = 0.5  # of the free memory: allocator fragmentation, cuBLAS workspaces, z
MIN_TOKENS = 512  # never below the CPU budget: a long prompt still gets a batch of its own
ROUND_TO = 256  # a budget that moves with a few free bytes would change batches run to run
UNCAPPED_ROWS = 1 << 30  # the row cap when the token budget alone shapes the micro-batches


def per_token_bytes(
    hidden: int,
    layers: int,
    vocab: int,
    dtype_bytes: int,
    *,
    intermediate: int | None = None,
    heads: int | None = None,
    max_length: int = 512,
    kept_per_token: float = 1.0,
) -> int:
    """Peak activation bytes per padded token of a no-grad forward pass (an upper estimate).

    Without gradients one layer's activations are alive at a time beside the residual
    stream: q, k, v, the attention output and the residual (5 hidden), the MLP's input
    projections and activation (3 intermediate: gated MLPs hold two of them), attention
    scores when they are materialised (heads x length), and the logits kept (vocab, in the
    dtype and in float32 for the log-softmax) for ``kept_per_token`` positions per token.
    ``layers`` is part of the signature for models whose caches grow with depth; a no-grad
    forward without a KV cache does not keep earlier layers' activations.
    """
    del layers
    intermediate = 4 * hidden if intermediate is None else intermediate
    heads = max(1, hidden // 64) if heads is None else heads
    layer = dtype_bytes * (5 * hidden + 3 * intermediate + heads * max_length)
    logits = kept_per_token * vocab * (dtype_bytes + 4)
    return int(layer + logits)


def cuda_token_budget(
    free_bytes: int,
    token_bytes: int,
    *,
    fraction: float = MEMORY_FRACTION,
    minimum: int = MIN_TOKENS,
    round_to: int = ROUND_TO,
) -> int:
    """Padded tokens per micro-batch: ``fraction`` of the free memory over the bytes per
    token, rounded down to ``round_to``, never below ``minimum``."""
    if token_bytes <= 0:
        raise ValueError(f"bytes per token must be > 0, got {token_bytes}")
    tokens = int(max(0, free_bytes) * fraction) // token_bytes
    return max(minimum, tokens // round_to * round_to)


def model_token_bytes(model_config: Any, dtype_bytes: int, max_length: int) -> int:
    """per_token_bytes from a transformers config (OPT, Llama, GPT-2 names)."""

    def first(*names: str, default: int | None = None) -> int | None:
        for name in names:
            value = getattr(model_config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return default

    hidden = first("hidden_size", "n_embd", "d_model", default=1024)
    return per_token_bytes(
        hidden,
        first("num_hidden_layers", "n_layer", default=1),
        first("vocab_size", default=50272),
        dtype_bytes,
        intermediate=first("intermediate_size", "ffn_dim", "n_inner"),
        heads=first("num_attention_heads", "n_head"),
        max_length=max_length,
    )


def auto_tokens(device: Any, model: Any, dtype_bytes: int, max_length: int) -> int | None:
    """The padded-token budget of ``zo.micro_batch_tokens: auto`` on ``device``: CPU 512;
    CUDA from its free memory now; other accelerators no cap (as before)."""
    kind = getattr(device, "type", str(device))
    if kind == "cpu":
        return CPU_BATCH_TOKENS
    if kind != "cuda":
        return None
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return cuda_token_budget(free, model_token_bytes(model.config, dtype_bytes, max_length))


def micro_batch_rows(micro_batch: int, micro_batch_tokens: int | str, device: Any) -> int:
    """Sequences per micro-batch at most: ``zo.micro_batch``, except that CUDA's automatic
    budget lets the tokens alone shape the batches (not a fixed 64 short sentences)."""
    kind = getattr(device, "type", str(device))
    return UNCAPPED_ROWS if micro_batch_tokens == "auto" and kind == "cuda" else micro_batch
