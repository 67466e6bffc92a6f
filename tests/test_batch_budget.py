"""The automatic micro-batch budget: a pure function of free memory and bytes per token,
tested with made-up numbers (no GPU needed); the CPU policy is unchanged."""

import pytest
import torch
from transformers import LlamaConfig, OPTConfig

from paczero.engine.batch_budget import (
    CPU_BATCH_TOKENS,
    MIN_TOKENS,
    UNCAPPED_ROWS,
    auto_tokens,
    cuda_token_budget,
    micro_batch_rows,
    model_token_bytes,
    per_token_bytes,
)

GIB = 2**30


def test_budget_grows_with_free_memory_and_shrinks_with_token_size():
    small, large = cuda_token_budget(4 * GIB, 100_000), cuda_token_budget(40 * GIB, 100_000)
    assert small == (4 * GIB // 2) // 100_000 // 256 * 256  # half the free memory, rounded
    assert large > 9 * small
    assert cuda_token_budget(40 * GIB, 200_000) < large
    assert large % 256 == 0


def test_budget_never_falls_below_the_floor():
    assert cuda_token_budget(0, 100_000) == MIN_TOKENS
    assert cuda_token_budget(10 * 2**20, 10**9) == MIN_TOKENS
    with pytest.raises(ValueError, match="bytes per token"):
        cuda_token_budget(GIB, 0)


def test_per_token_bytes_counts_layer_activations_and_kept_logits():
    base = per_token_bytes(2048, 24, 50272, 2, max_length=64)
    assert per_token_bytes(2048, 24, 50272, 4, max_length=64) > base  # float32 is wider
    assert per_token_bytes(4096, 24, 50272, 2, max_length=64) > base  # wider model
    assert per_token_bytes(2048, 24, 50272, 2, max_length=64, kept_per_token=0.1) < base
    assert per_token_bytes(2048, 24, 50272, 2, max_length=64) == base  # deterministic


def test_opt_1_3b_on_an_h200_gets_thousands_of_tokens_not_64_sentences():
    opt = OPTConfig(hidden_size=2048, num_hidden_layers=24, ffn_dim=8192, vocab_size=50272,
                    num_attention_heads=32)  # fmt: skip
    token_bytes = model_token_bytes(opt, 2, max_length=256)
    budget = cuda_token_budget(136 * GIB, token_bytes)  # an H200 after loading the model
    assert budget > 13_152  # the whole SST-2 pool of 1000 in one micro-batch
    llama = LlamaConfig(hidden_size=576, num_hidden_layers=30, intermediate_size=1536,
                        vocab_size=49152, num_attention_heads=9)  # fmt: skip
    assert model_token_bytes(llama, 2, 256) < token_bytes


def test_cpu_policy_is_unchanged():
    model = torch.nn.Linear(2, 2)
    assert auto_tokens(torch.device("cpu"), model, 4, 512) == CPU_BATCH_TOKENS == 512
    assert micro_batch_rows(32, "auto", torch.device("cpu")) == 32
    assert micro_batch_rows(32, 1024, torch.device("cuda")) == 32  # a set budget keeps rows
    assert micro_batch_rows(32, "auto", torch.device("cuda")) == UNCAPPED_ROWS


NO_CUDA = "needs CUDA: the budget reads the GPU's free memory"


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)
def test_cuda_budget_reads_the_device():
    model = torch.nn.Linear(2, 2)
    model.config = OPTConfig(hidden_size=2048, num_hidden_layers=24, ffn_dim=8192)
    budget = auto_tokens(torch.device("cuda"), model, 2, 256)
    free, _ = torch.cuda.mem_get_info()  # moves a little between the two reads
    assert budget >= MIN_TOKENS and budget % 256 == 0
    assert budget <= cuda_token_budget(2 * free, model_token_bytes(model.config, 2, 256))
