"""Canaries: built-in texts from the public stream, excluded ones masked out of the loss."""

import numpy as np
import torch

from paczero.privacy.randomness import RandomStream, public_stream
from paczero.tasks.canaries import (
    CANARY_WORDS,
    MAX_WORDS,
    MIN_WORDS,
    CanaryMaskedTask,
    builtin_canaries,
    canary_inclusion,
    digest,
)


def test_an_excluded_canary_has_derivative_zero():
    from paczero.config import ModelConfig
    from paczero.models import load_model
    from paczero.session import pool_losses
    from paczero.tasks import TaskConfig, build_task
    from paczero.tasks.sst2 import synthetic_sst2

    loaded = load_model(ModelConfig(name="tiny-llama", track="full", device="cpu"), seed=0)
    task = build_task(TaskConfig(), loaded.tokenizer)
    examples = synthetic_sst2(8, 2, seed=1)["train"][:4] + builtin_canaries(3, public_stream(0))
    pool = task.encode(examples)
    record = {"rows": [4, 5, 6], "included": [True, False, True]}
    masked = CanaryMaskedTask(task, pool, record)
    rows = np.array([6, 0, 5, 2, 4])
    plain = pool_losses(loaded.model, task, pool, rows, 2)
    losses = pool_losses(loaded.model, masked, pool, rows, 2)
    assert losses[2] == 0.0 and torch.equal(losses[[0, 1, 3, 4]], plain[[0, 1, 3, 4]])
    dev = task.encode(examples)  # another set: never masked
    assert torch.equal(pool_losses(loaded.model, masked, dev, rows, 2), plain)


def test_builtin_canaries_are_word_salads_set_by_the_public_seed():
    a, b = builtin_canaries(5, public_stream(0)), builtin_canaries(5, public_stream(0))
    assert a == b and a != builtin_canaries(5, public_stream(1))
    for canary in a:
        assert canary["label"] in (0, 1)
        assert MIN_WORDS <= len(canary["sentence"].split()) <= MAX_WORDS
        assert set(canary["sentence"].split()) <= set(CANARY_WORDS)


def test_inclusion_coins_come_from_the_secret_stream_and_the_digest_from_the_texts():
    coins = canary_inclusion(64, RandomStream(3, "secret"))
    assert coins.dtype == bool and 10 < coins.sum() < 54
    assert np.array_equal(coins, canary_inclusion(64, RandomStream(3, "secret")))
    assert not np.array_equal(coins, canary_inclusion(64, RandomStream(4, "secret")))
    texts = builtin_canaries(3, public_stream(0))
    assert digest(texts) == digest([dict(reversed(t.items())) for t in texts])
    assert digest(texts) != digest(texts[:2])
