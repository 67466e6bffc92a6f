"""The run's pieces (paczero.session): learning rate, task fit, units, named tensors."""

import numpy as np
import torch

from paczero.config import load_config
from paczero.session import Units, fit_task, learning_rate, load_named, model_positions


def test_the_linear_schedule_decays_to_zero_at_the_last_step():
    constant = load_config("smoke", ["train.steps=10", "train.lr=0.5"])
    linear = load_config("smoke", ["train.steps=10", "train.lr=0.5", "train.schedule=linear"])
    assert [learning_rate(constant, t) for t in (0, 9)] == [0.5, 0.5]
    assert [learning_rate(linear, t) for t in (0, 5)] == [0.5, 0.25]


def test_max_length_is_cut_to_the_models_positions(tiny_model):
    model = tiny_model().model
    positions = model_positions(model)
    assert positions == 512  # tiny-llama's position table
    task = load_config(None, ["task.name=squad"]).task
    assert task.max_length == 2048 and fit_task(task, model).max_length == 512
    short = task.model_copy(update={"max_length": 300})
    assert fit_task(short, model) is short


def test_units_expand_to_their_rows_and_named_tensors_load():
    units = Units((np.array([0, 2]), np.array([1])), "user")
    rows, owners = units.expand(np.array([1, 0]))
    assert len(units) == 2 and rows.tolist() == [1, 0, 2] and owners.tolist() == [0, 1, 1]
    param = torch.zeros(2)
    load_named([("w", param)], {"w": torch.tensor([1.0, 2.0], dtype=torch.float64)})
    assert param.tolist() == [1.0, 2.0] and param.dtype == torch.float32
