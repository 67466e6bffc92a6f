"""The attacker's arithmetic: which counts of guesses are tried, guesses scored, ranks."""

import numpy as np

from paczero.auditing.attacks import bound_grid, confident_curve, curve_grid, guess_curve, rank_of


def test_the_counts_of_guesses_tried_can_each_reject_chance():
    assert bound_grid(32, 0.05) == [8, 16, 32]  # 4 of 4 right is 1/16 by chance: useless
    assert bound_grid(1000, 0.05) == [125, 250, 500, 1000]
    for m in (4, 16, 64):
        grid = bound_grid(m, 0.05)
        assert grid[-1] == m and all(0.5**r < 0.05 / len(grid) for r in grid if r < m)


def test_balanced_guesses_call_the_top_scores_in_and_the_bottom_out():
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.5, 0.4])
    truth = np.array([True, False, False, False, True, True])
    curve = guess_curve(scores, truth, [2, 4, 6])
    # r=2: 0 in (right), 1 out (right); r=4: adds 2 in (wrong) and 3 out (right)
    assert curve[0] == {"guesses": 2, "correct": 2}
    assert curve[1] == {"guesses": 4, "correct": 3}
    assert [c["guesses"] for c in curve] == [2, 4, 6] and curve[2]["correct"] <= 6
    assert guess_curve(-scores, ~truth, [2]) == [{"guesses": 2, "correct": 2}]


def test_confident_guesses_skip_undecided_examples_and_stop_when_none_are_left():
    p_in = np.array([0.5, 0.95, 0.1, 0.6, 0.5])
    truth = np.array([True, True, True, False, False])
    curve = confident_curve(p_in, truth, [1, 2, 3, 4])
    assert curve == [
        {"guesses": 1, "correct": 1},  # 0.95 in: right
        {"guesses": 2, "correct": 1},  # 0.1 out: wrong
        {"guesses": 3, "correct": 1},  # 0.6 in: wrong
    ]


def test_the_plot_grid_and_ranks():
    assert curve_grid(5) == [2, 4, 5] and curve_grid(4) == [2, 4] and curve_grid(1) == [1]
    scores = np.array([0.3, 0.7, 0.3, 0.1])
    assert rank_of(scores, 1) == 1 and rank_of(scores, 3) == 4
    assert rank_of(scores, 0) == 3  # a tie counts against the attacker
