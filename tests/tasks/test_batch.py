"""Batches sorted by length under a row cap and a token budget."""

from dataclasses import dataclass

import numpy as np
import torch

from paczero.tasks.batch import TensorBatch, differentiable, length_sorted_groups, scoring


def test_length_groups_respect_the_token_budget_and_cover_every_row():
    lengths = np.array([30, 3, 4, 5, 3, 40, 6, 4, 2, 5])
    groups = list(length_sorted_groups(lengths, max_rows=4, max_tokens=20))
    flat = np.concatenate(groups)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert lengths[flat].tolist() == sorted(lengths.tolist())
    for group in groups:
        assert len(group) <= 4
        assert len(group) == 1 or len(group) * lengths[group].max() <= 20
    # the 30- and 40-token rows exceed the budget and each get a batch of their own
    assert [lengths[g].tolist() for g in groups[-2:]] == [[30], [40]]
    # without a budget only the row cap applies
    assert [len(g) for g in length_sorted_groups(lengths, max_rows=4)] == [4, 4, 2]
    # sequences per item count against both caps
    two = list(length_sorted_groups(lengths, max_rows=4, max_tokens=20, rows_per_item=2))
    assert all(len(g) <= 2 and (len(g) == 1 or 2 * len(g) * lengths[g].max() <= 20) for g in two)


def test_scoring_runs_without_a_graph_unless_inside_differentiable():
    x = torch.ones(2, requires_grad=True)
    with scoring():
        assert not (x * 2).requires_grad
    with differentiable():
        with scoring():
            assert (x * 2).requires_grad
        with differentiable():  # nested: leaving the inner block keeps the outer one on
            pass
        with scoring():
            assert (x * 2).requires_grad
    with scoring():
        assert not (x * 2).requires_grad


def test_a_batch_moves_its_tensors_and_keeps_the_rest():
    @dataclass
    class Small(TensorBatch):
        input_ids: torch.Tensor
        rows: list

    batch = Small(torch.arange(4), [1, 2])
    moved = batch.to("cpu")
    assert moved.device == torch.device("cpu") and moved.rows == [1, 2]
    assert torch.equal(moved.input_ids, batch.input_ids)
