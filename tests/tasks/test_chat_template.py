"""task.chat_template (issue #25 item 3): the prompt is the user's turn of the tokenizer's
chat template, the assistant's turn opened; label words and completions follow it, for
training, evaluation and predict."""

import json

import pytest

from paczero import models
from paczero.errors import UserError
from paczero.tasks import TaskConfig, build_task
from paczero.tasks.base import plain_ids

# A small template in the shape of the instruct models' (BOS, role markers, turn ends).
CHAT = (
    "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}[assistant]\n{% endif %}"
)
TICKETS = {
    "type": "classification",
    "name": "tickets",
    "prompt": "Message: {text}\nTeam:",
    "label_field": "team",
    "label_words": {"billing": "Billing", "technical": "Technical support"},
}
QA = {"type": "generation", "name": "qa", "prompt": "Q: {q}\nA:", "completion_field": "a"}


PLAIN_TOKENIZER = models.tiny_tokenizer


def chat_tokenizer():
    tok = PLAIN_TOKENIZER()
    tok.chat_template = CHAT
    return tok


def test_classification_prompts_are_the_user_turn_and_words_follow_it():
    tok = chat_tokenizer()
    task = build_task(TaskConfig(**TICKETS, chat_template=True), tok)
    assert task.render({"text": " Charged twice "}) == (
        "<s>[user] Message: Charged twice\nTeam:\n[assistant]\n"
    )
    assert task.spec.words == ("Billing", "Technical support")  # no delimiter by default
    enc = task.encode([{"text": "Charged twice", "team": "billing"}])
    ids = enc.ids[0].tolist()
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id  # BOS once
    templated = task.render({"text": "x"})
    for word, option in zip(task.spec.words, task.option_ids, strict=True):
        joint = plain_ids(tok, [templated + word])[0]
        assert joint[len(joint) - len(option) :] == option
    explicit = TaskConfig(**TICKETS, chat_template=True, target_delimiter=" ")
    assert build_task(explicit, tok).spec.words == (" Billing", " Technical support")


def test_generation_completions_follow_the_templated_prompt():
    tok = chat_tokenizer()
    task = build_task(TaskConfig(**QA, chat_template=True), tok)
    enc = task.encode([{"q": "Capital of France?", "a": "Paris"}])
    prompt = tok.decode(enc.prompts[0].tolist())
    assert prompt == "<s>[user] Q: Capital of France?\nA:\n[assistant]\n"
    assert tok.decode(enc.answers[0].tolist()) == "Paris\n"
    plain = build_task(TaskConfig(**QA), tok).encode([{"q": "Capital of France?", "a": "Paris"}])
    assert tok.decode(plain.prompts[0].tolist()) == "<s>Q: Capital of France?\nA:"


def test_a_tokenizer_without_a_chat_template_is_refused_in_one_line():
    with pytest.raises(UserError, match="has no chat template") as err:
        build_task(TaskConfig(**QA, chat_template=True), models.tiny_tokenizer())
    assert "\n" not in str(err.value)


def test_train_evaluate_and_predict_read_the_templated_prompts(tmp_path, monkeypatch):
    """A whole run with the chat template: training, the evaluations and predict all build
    their prompts through it (a tokenizer without one would refuse each)."""
    import paczero
    from paczero.config import load_config
    from paczero.trainer import train

    monkeypatch.setattr(models, "tiny_tokenizer", chat_tokenizer)
    rows = [{"text": f"message {i}", "team": ["billing", "technical"][i % 2]} for i in range(24)]
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sets = [f"task.{k}={json.dumps(v)}" for k, v in TICKETS.items()]
    cfg = load_config(
        None,
        [
            *sets,
            "task.chat_template=true",
            "model.name=tiny-llama",
            "model.device=cpu",
            f"data.train={data}",
            "data.num_train=16",
            "data.num_dev=4",
            "data.num_test=4",
            "train.steps=2",
            "train.batch_size=4",
            "mechanism.subsets=4",
        ],
    )
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    saved = (run / "config.yaml").read_text()
    assert "chat_template: true" in saved and "target_delimiter: ''" in saved
    new = tmp_path / "new.csv"
    new.write_text("text\nmy card was charged\n")
    out = paczero.predict(str(run), data=str(new))
    assert len(out) == 1 and out[0]["prediction"] in ("billing", "technical")
