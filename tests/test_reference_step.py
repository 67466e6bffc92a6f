"""The bench's yardstick, the published-code-style step: same losses as the task, a step
that restores theta before its update and moves it along z only by lr."""

import numpy as np
import torch

from paczero.bench.reference_step import from_task
from paczero.config import ModelConfig
from paczero.models import load_model
from paczero.tasks import TaskConfig, build_task
from paczero.tasks.sst2 import synthetic_sst2


def _reference(loaded, rows=6, **options):
    task = build_task(TaskConfig(), loaded.tokenizer)
    encoded = task.encode(synthetic_sst2(rows, 2, seed=1)["train"])
    params = [p for _, p in loaded.trainable]
    return task, encoded, from_task(task, loaded.model, encoded, params, **options)


def test_the_reference_losses_are_the_task_s_losses(tiny_model):
    loaded = tiny_model()
    task, encoded, reference = _reference(loaded, micro_batch=5)
    assert reference.input_ids.shape[0] == 6 * task.n_options  # one sequence per label word
    assert reference.padded_tokens == reference.input_ids.numel()
    assert (reference.membership.sum(1) == 8).all()  # each row in half of the 16 subsets
    ours = torch.empty(6)
    for rows, batch in task.batches(encoded, np.arange(6), 6):  # length-sorted groups
        ours[torch.as_tensor(rows)] = task.losses(loaded.model, batch).float()
    torch.testing.assert_close(reference.losses(), ours, rtol=1e-4, atol=1e-5)


def test_a_step_restores_theta_then_moves_it_by_lr_along_z():
    loaded = load_model(ModelConfig(name="tiny-llama", track="full", device="cpu"), seed=0)
    _, _, reference = _reference(loaded, lr=1e-2, eps=1e-3)
    before = [p.detach().clone() for p in reference.params]
    reference.perturb(7, 1e-3)
    reference.perturb(7, -2e-3)
    reference.perturb(7, 1e-3)
    for p, q in zip(reference.params, before, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    loss = reference.step(7)
    assert np.isfinite(loss)
    torch.manual_seed(7)
    z = torch.normal(0.0, 1.0, size=before[0].shape)
    moved = (reference.params[0] - before[0]) / 1e-2  # = -coeff * z with coeff = +-1
    assert torch.allclose(moved.abs(), z.abs(), atol=1e-3)
