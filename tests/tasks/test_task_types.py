"""The generic task types (issue #14): prompts over a row's fields, classification with any
number of classes and multi-token label words, generation with stop strings and answer
lists, macro-F1, and the registry (one module plus one line per type)."""

import numpy as np
import pytest
import torch

from paczero import tasks
from paczero.config import load_config
from paczero.errors import UserError
from paczero.models import tiny_tokenizer
from paczero.tasks import TaskConfig, build_task, registry
from paczero.tasks.base import Prompt, escape, prompt_fields
from paczero.tasks.generation import GenerationSpec
from paczero.tasks.metrics import macro_f1

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


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return tiny_model()


def test_prompts_render_fields_stripped_unless_verbatim():
    prompt = Prompt("Title: {title}\n{body} -> {{json}} {title}", frozenset({"body"}))
    assert prompt.fields == ("title", "body")
    assert prompt.render({"title": " T ", "body": " b "}) == "Title: T\n b  -> {json} T"
    assert prompt.cue() == ""  # the template ends in a field
    assert Prompt("Q: {q}\nAnswer:").cue() == "\nAnswer:"
    assert Prompt("Q: {q}\nA {{x}}:").cue() == "\nA {x}:"
    assert Prompt(escape("{a}") + "{b}").render({"b": 1}) == "{a}1"
    assert Prompt("{Message Text}!").render({"Message Text": "hi"}) == "hi!"
    assert Prompt("{a} and {b}").placeholder() == "<a> and <b>"
    for bad, needle in [
        ("{}", "column name"),
        ("{0}", "column name"),
        ("{a.b}", "plain"),
        ("{a!r}", "plain"),
        ("{a:>5}", "plain"),
        ("{a", "not a prompt"),
    ]:
        with pytest.raises(ValueError, match=needle):
            prompt_fields(bad)


def test_macro_f1_matches_its_definition():
    assert macro_f1([0, 1, 2, 0], [0, 1, 2, 0]) == 1.0
    # class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 0 -> 0; class 2: tp 1 fp 0 fn 0 -> 1
    assert macro_f1([0, 0, 1, 2], [0, 1, 0, 2]) == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert macro_f1([0, 0], [1, 1]) == 0.0  # classes seen only in predictions count too


def test_three_classes_with_a_multi_token_label_word(tiny):
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


def test_single_token_words_take_the_fast_path_with_the_same_losses(tiny):
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


def test_label_words_as_a_list_or_a_mapping_with_number_keys():
    as_list = load_config(
        None,
        [
            "task.type=classification",
            "task.prompt='{t}:'",
            "task.label_words=[bad, good]",
            "data.train=x.csv",
        ],
    )
    as_map = load_config(
        None,
        [
            "task.type=classification",
            "task.prompt='{t}:'",
            "task.label_words={0: bad, 1.0: good}",
            "data.train=x.csv",
        ],
    )
    spec_a, spec_b = (registry.task_spec(c.task) for c in (as_list, as_map))
    assert spec_a.labels == spec_b.labels == ("0", "1")
    assert spec_a.words == (" bad", " good") and spec_a.class_of(1.0) == 1
    no_space = load_config(
        None,
        [
            "task.type=classification",
            "task.prompt='{t}:'",
            "task.label_words=[bad, good]",
            "task.target_delimiter=''",
            "data.train=x.csv",
        ],
    )
    assert registry.task_spec(no_space.task).words == ("bad", "good")


def test_generation_cuts_at_stop_strings_and_trains_on_the_completion(tiny):
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


@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        (["task.type=regression"], "unknown task.type 'regression'"),
        (["task.type=classification", "task.name=sst2"], "'sst2' is a preset"),
        (["task.type=classification", "task.name='a b'"], "names run directories"),
        (["task.type=classification"], "needs task.prompt"),
        (["task.type=classification", "task.prompt='{t}'"], "needs task.label_words"),
        (["task.type=generation", "task.prompt='{t}'"], "completion_field"),
        (
            [
                "task.type=generation",
                "task.prompt='{t}'",
                "task.completion_field=a",
                "task.truncate_field=doc",
            ],
            "not a field of task.prompt",
        ),
        (
            [
                "task.type=generation",
                "task.prompt='{t}'",
                "task.completion_field=a",
                "task.metrics=[completion_loss]",
            ],
            "must improve upwards",
        ),
        (
            [
                "task.type=classification",
                "task.prompt='{t}'",
                "task.label_words=[a, b]",
                "task.metrics=[f1]",
            ],
            "not a classification metric",
        ),
        (
            [
                "task.type=classification",
                "task.prompt='{t}'",
                "task.label_words=[a, b]",
                "task.completion_field=c",
            ],
            "not a key of classification tasks",
        ),
        (
            [
                "task.type=classification",
                "task.prompt='{t}'",
                "task.label_words=[a, b]",
                "task.template=review",
            ],
            "names a preset's prompt",
        ),
        (["task.name=squad", "task.stop=['###']"], "task.stop is a key of a task of your own"),
        (
            ["task.name=sst2", "task.metrics=[macro_f1, accuracy]", "task.objective=neg-f1"],
            "is for generation tasks",
        ),
    ],
)
def test_task_keys_are_checked_when_the_config_loads(keys, needle):
    with pytest.raises(UserError, match=needle):
        load_config(None, [*keys, "data.train=x.csv"])


def test_presets_take_metrics_and_the_registry_names_every_type():
    cfg = load_config(None, ["task.metrics=[macro_f1, accuracy]"])
    assert registry.task_spec(cfg.task).metrics == ("macro_f1", "accuracy")
    assert set(tasks.TASK_TYPES) == {"classification", "generation"}
    assert {p.type.kind for p in tasks.PRESETS.values()} == {"classification", "generation"}
    assert registry.default_max_length("squad", None) == 2048
    assert registry.default_max_length("x", "generation") == 512
