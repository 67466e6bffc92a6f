"""Config: recipes, YAML, dotted overrides, one-line validation errors."""

import pytest
import yaml

from paczero.cli import main
from paczero.config import RunConfig, load_config, recipe_names
from paczero.errors import UserError
from paczero.trainer import train


def test_defaults_follow_mezo_and_the_design_keys():
    cfg = RunConfig()
    assert (cfg.data.num_train, cfg.data.num_dev, cfg.data.num_test) == (1000, 500, 1000)
    assert cfg.model.lora.rank == 8 and cfg.model.lora.alpha == 16
    assert cfg.model.lora.targets == ["q_proj", "v_proj"] and cfg.model.lora.dropout == 0
    assert cfg.seed.secret is None


@pytest.mark.parametrize(
    ("sets", "subsets"),
    [
        ([], 128),
        (["data.num_train=32"], 32),
        (["data.num_train=33"], 32),
        (["data.num_train=500"], 128),
        (["data.num_train=16", "mechanism.subsets=4"], 4),
    ],
)
def test_a_config_without_a_mechanism_is_private(sets, subsets):
    """Private by default: PACZero-ZPL with M the largest even M <= min(128, pool)."""
    cfg = load_config(None, sets)
    assert cfg.mechanism.name == "paczero-zpl" and cfg.mechanism.subsets == subsets
    assert RunConfig().mechanism.name == "paczero-zpl"


def test_only_a_named_mechanism_runs_without_privacy():
    cfg = load_config(None, ["mechanism.name=mezo"])
    assert cfg.mechanism.name == "mezo"


@pytest.mark.parametrize("text", ["", "# nothing here\n\n", "---\n# a comment\n"])
def test_an_empty_config_file_is_refused_in_one_line(tmp_path, capsys, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    out = capsys.readouterr().err.strip()
    assert "is empty" in out and len(out.splitlines()) == 1
    assert not (tmp_path / "run").exists()


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
        (["mechanism.name=paczero-zpl", "mechanism.subsets=7"], "must be even"),
        (["mechanism.name=paczero-mi", "mechanism.budget=0"], "for 'mechanism.budget'"),
        (
            ["mechanism.name=mezo", "mechanism.epsilon=2"],
            "unknown config key 'mechanism.epsilon' for mechanism 'mezo'",
        ),
        (["mechanism.subsets=8"], "unknown config key 'mechanism.subsets' for mechanism 'mezo'"),
        (
            ["mechanism.name=paczero-mi", "mechanism.budget=0.3", "mechanism.sensitivity=2"],
            "unknown config key 'mechanism.sensitivity' for mechanism 'paczero-mi'",
        ),
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


def test_overrides_follow_the_yaml_core_schema():
    config = load_config("smoke", ["train.eval_at_start=True", "train.lr=1e-3"])
    assert config.train.eval_at_start is True and config.train.lr == 0.001


def test_each_mechanism_has_its_own_keys_and_an_override_switching_it_drops_the_old_ones():
    # the demo recipe is PACZero-ZPL with subsets 8, clip 25, disagreement skip
    assert load_config("demo", ["mechanism.name=mezo"]).mechanism.model_dump() == {"name": "mezo"}
    full_sign = load_config("demo", ["mechanism.name=full-sign"]).mechanism
    assert full_sign.model_dump() == {"name": "full-sign", "clip": 25.0, "skip_all_zero": False}
    mi = load_config("demo", ["mechanism.name=paczero-mi", "mechanism.budget=0.3"]).mechanism
    assert (mi.subsets, mi.clip, mi.budget) == (8, 25.0, 0.3)
    # a key the override sets itself is the user's: refused, in one line
    with pytest.raises(UserError, match="'mechanism.clip' for mechanism 'mezo'"):
        load_config("demo", ["mechanism.name=mezo", "mechanism.clip=3"])
    text = load_config("smoke").to_yaml()
    assert "mechanism:\n  name: mezo\nseed:" in text  # config.yaml lists the run's own keys


def test_data_dir_with_synthetic_data_is_refused_not_ignored(tmp_path, monkeypatch, capsys):
    with pytest.raises(UserError, match="data.source is 'synthetic', which reads no files"):
        load_config("smoke", [f"data.dir={tmp_path}"])
    assert main(["train", "smoke", "--set", f"data.dir={tmp_path}", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "data.dir" in err and "data.source=auto" in err and len(err.splitlines()) == 1
    # $PACZERO_DATA_DIR is an environment default, not a request: dropped for synthetic runs.
    monkeypatch.setenv("PACZERO_DATA_DIR", str(tmp_path))
    cfg = load_config("smoke")
    assert cfg.data.dir is None
    assert load_config("smoke", ["data.source=auto"]).data.dir == str(tmp_path)


def test_result_json_description_says_which_keys_were_overridden(tmp_path, small_run):
    recipe = load_config("smoke").description
    sets = [*small_run, "train.steps=4"]
    result = train("smoke", out=tmp_path / "run", overrides=sets, progress=False)
    described = result.data["config"]["description"]
    assert described.startswith(recipe) and described != recipe
    assert "overridden: data.num_train, data.num_dev, data.num_test, model.device, train.steps" in (
        described
    )
    stored = yaml.safe_load((result.run_dir / "config.yaml").read_text())["description"]
    assert stored == described
    # A run's own config.yaml is not described again (resume and eval load it).
    again = load_config(str(result.run_dir / "config.yaml"), ["train.lr=0.5"])
    assert again.description == described
    assert load_config("smoke", ["description=mine", "train.steps=3"]).description == "mine"
    assert load_config("smoke").description == recipe


def test_a_task_of_ones_own_shows_no_preset_template():
    own = load_config("examples/tickets.yaml").public_dict()["task"]
    assert "template" not in own and own["type"] == "classification"
    assert load_config("smoke").public_dict()["task"]["template"] == "mezo"


def test_one_function_builds_a_config_from_any_source_plus_overrides(tmp_path):
    """A recipe name, its YAML file, its mapping and a config built from it all resolve
    through ``load_config`` to the same config, the overrides named in its description."""
    sets = ["train.steps=7", "model.name=tiny-llama"]
    by_name = load_config("smoke", sets)
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(load_config("smoke").public_dict(), sort_keys=False))
    data = yaml.safe_load(path.read_text())
    assert by_name.description.endswith("[overridden: train.steps, model.name]")
    assert load_config(str(path), sets) == by_name
    assert load_config(data, sets) == by_name
    assert load_config(load_config("smoke"), sets) == by_name
    assert load_config(by_name) is by_name  # nothing to resolve again
    assert data == yaml.safe_load(path.read_text())  # the caller's mapping is left alone


def test_the_mechanism_class_is_looked_up_once_and_handed_on_with_the_config():
    import ast
    from pathlib import Path

    import paczero
    from paczero.mechanisms import REGISTRY

    cfg = load_config(None, ["mechanism.name=mezo"])
    assert cfg.mechanism_type is REGISTRY["mezo"]
    cfg.mechanism = REGISTRY["backprop"].Config(name="backprop")
    assert cfg.mechanism_type is REGISTRY["backprop"]  # an assignment is validated again
    src = Path(paczero.__file__).parent
    lookups = set()
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in (
                "mechanism_class",
                "build_mechanism",
            ):
                lookups.add(path.relative_to(src).as_posix())
    assert lookups == {"config.py", "mechanisms/__init__.py"}, lookups
