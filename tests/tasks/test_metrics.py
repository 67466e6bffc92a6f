import math

import pytest

from paczero.tasks.metrics import (
    exact_match,
    f1_score,
    macro_f1,
    normalize_answer,
    squad_scores,
)


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("The  Denver Broncos!", "denver broncos"),
        ("  a cat,  AN apple; the end. ", "cat apple end"),
        ("Theatre and anthem", "theatre and anthem"),  # articles only as whole words
        ("A-team's (1990)", "ateams 1990"),  # punctuation removed, not replaced
        ("1–2 “quoted”", "1–2 “quoted”"),  # non-ASCII punctuation is kept, as in v1.1
        ("\tthe\n", ""),
    ],
)
def test_normalisation(text, normal):
    assert normalize_answer(text) == normal


def test_exact_and_partial_matches():
    assert f1_score("Denver Broncos", ["Denver Broncos"]) == 1.0
    assert exact_match("Denver Broncos", ["Denver Broncos"]) == 1.0
    # punctuation and case do not matter
    assert f1_score("denver, BRONCOS.", ["Denver Broncos"]) == 1.0
    assert exact_match("denver, BRONCOS.", ["Denver Broncos"]) == 1.0
    # articles do not matter
    assert exact_match("the cat", ["a cat"]) == 1.0
    # precision 2/3, recall 1 -> F1 = 2 * (2/3) / (5/3) = 0.8
    assert f1_score("the Denver Broncos team", ["Denver Broncos"]) == pytest.approx(0.8)
    assert exact_match("the Denver Broncos team", ["Denver Broncos"]) == 0.0
    # repeated tokens count once each per match (bag of tokens): common x:1, y:1
    assert f1_score("x x y", ["x y"]) == pytest.approx(0.8)
    # "the" is dropped: precision 2/2, recall 2/4 -> 2 * 1 * 0.5 / 1.5 = 2/3
    assert f1_score("Carolina Panthers", ["the Panthers of North Carolina"]) == pytest.approx(2 / 3)
    # precision 1/2, recall 1/4 -> 2 * (1/8) / (3/4) = 1/3
    assert f1_score("Carolina wins", ["Panthers of North Carolina"]) == pytest.approx(1 / 3)


def test_maximum_over_gold_answers():
    golds = ["Denver Broncos", "Broncos", "the Broncos"]
    assert f1_score("Broncos", golds) == 1.0 and exact_match("Broncos", golds) == 1.0
    # precision 1, recall 1/2 against the first gold; 0 against the second
    assert f1_score("Denver", ["Denver Broncos", "Carolina"]) == pytest.approx(2 / 3)
    assert exact_match("Denver", ["Denver Broncos", "Carolina"]) == 0.0
    assert f1_score("Carolina", ["Denver Broncos", "Carolina"]) == 1.0


def test_empty_prediction_and_answers():
    assert f1_score("", ["Denver"]) == 0.0 and exact_match("", ["Denver"]) == 0.0
    # v1.1: a gold that normalises to nothing gives EM 1 but F1 0 for an empty prediction
    assert exact_match("", ["The"]) == 1.0 and f1_score("", ["The"]) == 0.0
    assert f1_score("Denver", []) == 0.0 and exact_match("Denver", []) == 0.0


def test_mean_scores():
    got = squad_scores(
        ["Denver Broncos", "Denver", ""], [["Denver Broncos"], ["Denver Broncos"], ["x"]]
    )
    assert got["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert got["exact_match"] == pytest.approx(1 / 3)
    empty = squad_scores([], [])
    assert math.isnan(empty["f1"]) and math.isnan(empty["exact_match"])
    with pytest.raises(ValueError):
        squad_scores(["a"], [])


def test_macro_f1_matches_its_definition():
    assert macro_f1([0, 1, 2, 0], [0, 1, 2, 0]) == 1.0
    # class 0: tp 1 fp 1 fn 1 -> 0.5; class 1: tp 0 -> 0; class 2: tp 1 fp 0 fn 0 -> 1
    assert macro_f1([0, 0, 1, 2], [0, 1, 0, 2]) == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert macro_f1([0, 0], [1, 1]) == 0.0  # classes seen only in predictions count too
