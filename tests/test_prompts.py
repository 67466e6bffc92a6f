"""The prompt a model reads, shown and controlled (issue 36 item 15): `paczero prompt`
prints the rendered prompt of a few rows, chat template included; `task.system_prompt`
is the system turn, none by default: a template that writes a default system turn of its
own when none is given (SmolLM2's) gets an empty one instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from paczero.cli import main
from paczero.config import load_config
from paczero.errors import UserError
from paczero.models import tiny_tokenizer
from paczero.tasks import build_task

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = ["--set", "model.name=tiny-llama", "--set", "model.device=cpu"]
# SmolLM2-135M-Instruct's chat template: a default system turn when the first is not one
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
    "Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# a template with no system turn of its own
PLAIN_TEMPLATE = (
    "{% for message in messages %}<{{ message['role'] }}>{{ message['content'] }}"
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)


@pytest.fixture
def rows(tmp_path) -> Path:
    path = tmp_path / "new.csv"
    path.write_text("id,text\nn1,My card was charged twice.\nn2,The app crashes.\nn3,Hi.\n")
    return path


def test_prompt_shows_the_rendered_prompt_of_the_first_rows(rows, capsys):
    config = str(EXAMPLES / "tickets.yaml")
    assert main(["prompt", config, "--data", str(rows), "--rows", "2", *TINY]) == 0
    out = capsys.readouterr().out
    assert "Message: My card was charged twice.\nTeam:" in out
    assert "Message: The app crashes.\nTeam:" in out and "Hi." not in out
    assert "' Billing'" in out  # what is scored after it


def test_prompt_refuses_a_bad_row_count(rows, capsys):
    assert main(["prompt", "smoke", "--data", str(rows), "--rows", "0"]) == 2
    assert "--rows" in capsys.readouterr().err


def _task(template: str, *keys: str):
    cfg = load_config(
        str(EXAMPLES / "tickets.yaml"),
        ["model.name=tiny-llama", "task.chat_template=true", *keys],
    )
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = template
    return build_task(cfg.task, tokenizer)


def test_no_system_turn_is_inserted_unasked():
    text = _task(SMOLLM2_TEMPLATE).render({"text": "hello"})
    assert "SmolLM" not in text
    assert text == (
        "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nMessage: hello\nTeam:<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    plain = _task(PLAIN_TEMPLATE).render({"text": "hello"})
    assert plain == "<user>Message: hello\nTeam:<assistant>"  # no system turn at all


def test_a_system_prompt_is_the_system_turn():
    text = _task(SMOLLM2_TEMPLATE, "task.system_prompt=Route the ticket.").render({"text": "x"})
    assert text.startswith("<|im_start|>system\nRoute the ticket.<|im_end|>\n<|im_start|>user")
    plain = _task(PLAIN_TEMPLATE, "task.system_prompt=Be brief.").render({"text": "x"})
    assert plain == "<system>Be brief.<user>Message: x\nTeam:<assistant>"


def test_a_system_prompt_needs_the_chat_template():
    with pytest.raises(UserError, match="task.system_prompt .*task.chat_template"):
        load_config(str(EXAMPLES / "tickets.yaml"), ["task.system_prompt=Be brief."])
