"""The task registry: the task keys checked when a config loads, presets, task types."""

import pytest

from paczero import tasks
from paczero.config import load_config
from paczero.errors import UserError
from paczero.tasks import registry


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
