"""The task section's keys: label words as a list or a mapping, read the same."""

from paczero.config import load_config
from paczero.tasks import registry


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
