"""Generation: stop strings, the completion trained on, a long prompt truncated."""

import numpy as np

from paczero.models import tiny_tokenizer
from paczero.tasks import TaskConfig, build_task
from paczero.tasks.base import Prompt
from paczero.tasks.generation import GenerationSpec


def test_generation_cuts_at_stop_strings_and_trains_on_the_completion(tiny_model):
    tiny = tiny_model()
    spec = GenerationSpec("qa", "task 'qa'", Prompt("Q: {q}\nA:"), "a", None, stop=("###", "\n"))
    assert spec.cut(" Paris\nmore") == "Paris" and spec.cut("Lima ### x") == "Lima"
    assert spec.continuation({"a": "Oslo"}) == " Oslo###"
    cfg = TaskConfig(
        type="generation",
        name="qa",
        prompt="Q: {q}\nA:",
        completion_field="a",
        stop=["###"],
        max_length=128,
        max_new_tokens=12,
    )
    task = build_task(cfg, tiny.tokenizer)
    enc = task.encode([{"q": "Capital of Peru?", "a": "Lima"}, {"q": "Of Chile?", "a": "Santiago"}])
    assert tiny.tokenizer.decode(enc.answers[0]) == " Lima###"
    assert enc.golds == [["Lima"], ["Santiago"]]
    (_, batch), *_ = task.batches(enc, np.arange(2), 2, kind="generate")
    texts = task.generate(tiny.model, batch)  # the multi-character stop string is honoured
    assert all("###" not in t for t in texts)
    metrics = task.evaluate(tiny.model, enc, 2)
    assert list(metrics) == ["f1", "exact_match", "completion_loss", "loss"]
    assert metrics["loss"] == metrics["completion_loss"]


def test_a_long_prompt_loses_the_start_of_its_truncate_field():
    tok = tiny_tokenizer()
    cfg = TaskConfig(
        type="generation",
        name="qa",
        prompt="Doc: {doc}\nQ: {q}\nA:",
        completion_field="a",
        truncate_field="doc",
        max_length=64,
        max_new_tokens=8,
    )
    task = build_task(cfg, tok)
    long = {"doc": "the cast is fun . " * 40, "q": "How is the cast?", "a": "fun"}
    enc = task.encode([long])
    text = tok.decode(enc.prompts[0][1:])
    assert enc.truncated == 1 and len(enc.prompts[0]) <= 56
    assert text.startswith("Doc: ") and text.endswith("\nQ: How is the cast?\nA:")
