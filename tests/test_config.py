"""Config: recipes, YAML, dotted overrides, one-line validation errors."""

import pytest
import yaml

from paczero.config import RunConfig, load_config, recipe_names
from paczero.errors import UserError


def test_defaults_follow_mezo_and_the_design_keys():
    cfg = RunConfig()
    assert (cfg.data.num_train, cfg.data.num_dev, cfg.data.num_test) == (1000, 500, 1000)
    assert cfg.model.lora.rank == 8 and cfg.model.lora.alpha == 16
    assert cfg.model.lora.targets == ["q_proj", "v_proj"] and cfg.model.lora.dropout == 0
    assert cfg.mechanism.name == "mezo" and cfg.seed.secret is None


def test_overrides_are_dotted_and_typed():
    cfg = load_config("smoke", ["train.steps=7", "model.lora.targets=[q_proj]", "zo.eps=1e-2"])
    assert cfg.train.steps == 7
    assert cfg.model.lora.targets == ["q_proj"]
    assert cfg.zo.eps == pytest.approx(1e-2)
    assert load_config("smoke", ["train.batch_size=full"]).train.batch_size == "full"


def test_yaml_file_and_saved_config_round_trip(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"train": {"steps": 3}, "mechanism": {"name": "mezo"}}))
    cfg = load_config(str(path))
    assert cfg.train.steps == 3
    saved = tmp_path / "resolved.yaml"
    saved.write_text(cfg.to_yaml())
    assert load_config(str(saved)) == cfg


def test_every_recipe_validates():
    names = recipe_names()
    assert "smoke" in names and "mezo-sst2-opt1.3b-ft" in names
    for name in names:
        assert isinstance(load_config(name), RunConfig)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.stepz=3"], "unknown config key 'train.stepz' (did you mean 'steps'?)"),
        (["modle.name=x"], "unknown config key 'modle' (did you mean 'model'?)"),
        (["train.steps=many"], "invalid value for 'train.steps'"),
        (["train.steps=0"], "invalid value for 'train.steps'"),
        (["train.lr=0"], "invalid value for 'train.lr'"),
        (["train.lr=-1e-3"], "invalid value for 'train.lr'"),
        (["mechanism.subsets=7"], "must be even"),
        (["mechanism.budget=0"], "invalid value for 'mechanism.budget'"),
        (["model.dtype=float8"], "invalid value for 'model.dtype'"),
        (["zo.micro_batch_tokens=0"], "invalid value for 'zo.micro_batch_tokens'"),
        (["zo.micro_batch_tokens=some"], "invalid value for 'zo.micro_batch_tokens'"),
        (["train.batch_size=2000"], "larger than the pool"),
        (["mechanism.name=paczero-zpl", "mechanism.subsets=300"], "smaller than mechanism.subsets"),
        (["mechanism.name=paczero-mi", "mechanism.subsets=4"], "mechanism.budget"),
        (["mechanism.name=dp-magic"], "invalid value for 'mechanism.name'"),
        (["train.steps"], "--set expects key=value"),
    ],
)
def test_bad_values_get_one_clear_line(overrides, message):
    with pytest.raises(UserError) as err:
        load_config("smoke", overrides)
    text = str(err.value)
    assert message in text
    assert "\n" not in text


def test_unknown_recipe_suggests_a_close_one():
    with pytest.raises(UserError, match="did you mean 'smoke'"):
        load_config("smok")
    with pytest.raises(UserError, match="config file not found"):
        load_config("missing.yaml")
