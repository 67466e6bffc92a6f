"""Classification with any number of classes and multi-token label words."""

import numpy as np
import pytest
import torch

from paczero.errors import UserError
from paczero.tasks import TaskConfig, build_task

TICKETS = {
    "type": "classification",
    "name": "tickets",
    "prompt": "Message: {text}\nTeam:",
    "label_field": "team",
    "label_words": {"billing": "Billing", "technical": "Technical support", "sales": "Sales"},
}
ROWS = [
    {"text": "I was charged twice.", "team": "billing"},
    {"text": " The app crashes on start. ", "team": "technical"},
    {"text": "A quote for 50 seats?", "team": "sales"},
    {"text": "Refund please", "team": "billing"},
    {"text": "Login fails after the update", "team": "technical"},
]


def test_three_classes_with_a_multi_token_label_word(tiny_model):
    tiny = tiny_model()
    task = build_task(TaskConfig(**TICKETS), tiny.tokenizer)
    assert task.n_options == 3 and not task.single_token
    assert len(task.option_ids[1]) > 1  # " Technical support"
    assert task.render(ROWS[1]) == "Message: The app crashes on start.\nTeam:"
    assert task.describe().startswith("tickets: 'Message: <text>\\nTeam:' -> ' Billing'")
    enc = task.encode(ROWS)
    assert enc.labels.tolist() == [0, 1, 2, 0, 1]
    metrics = task.evaluate(tiny.model, enc, 2)
    assert list(metrics) == ["accuracy", "macro_f1", "loss"] and task.metric == "accuracy"
    with pytest.raises(UserError, match="label 'hr' is not one of the task's labels"):
        task.encode([{"text": "x", "team": "hr"}])


def test_single_token_words_take_the_fast_path_with_the_same_losses(tiny_model):
    tiny = tiny_model()
    cfg = TaskConfig(**{**TICKETS, "label_words": ["good", "bad", "fun"], "label_field": "y"})
    fast = build_task(cfg, tiny.tokenizer)
    slow = build_task(cfg, tiny.tokenizer, single_token=False)
    assert fast.single_token and fast.sequences_per_example == 1
    rows = [{"text": r["text"], "y": i % 3} for i, r in enumerate(ROWS)]
    enc = fast.encode(rows)
    idx = np.arange(len(enc))
    a = torch.cat([fast.losses(tiny.model, b) for _, b in fast.batches(enc, idx, 8)])
    b = torch.cat([slow.losses(tiny.model, b) for _, b in slow.batches(enc, idx, 8)])
    assert torch.allclose(a, b, atol=1e-5)
