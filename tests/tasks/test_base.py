"""What every task type shares: prompts over a row's fields, with literal braces escaped."""

import pytest

from paczero.tasks.base import Prompt, escape, prompt_fields


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
