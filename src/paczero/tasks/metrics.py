"""SQuAD v1.1 answer metrics, exactly as the official ``evaluate-v1.1.py`` (and MeZO) compute them.

Both answers are normalised (lower-case, punctuation removed, the articles a/an/the removed,
whitespace squashed); F1 is the bag-of-tokens overlap, EM is equality; each is the maximum
over the gold answers. As in v1.1 (not v2.0), an empty normalised prediction or gold answer
scores F1 0 even when both are empty, while EM is 1 when both normalise to the same string.
Scores are fractions in [0, 1]; papers print them multiplied by 100.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """The official v1.1 normalisation: lower, remove punctuation, remove articles, squash."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def f1_single(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match_single(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    """Maximum F1 over the gold answers (0 when there are none)."""
    return max((f1_single(prediction, g) for g in golds), default=0.0)


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    return max((exact_match_single(prediction, g) for g in golds), default=0.0)


def squad_scores(predictions: Iterable[str], golds: Iterable[Sequence[str]]) -> dict[str, float]:
    """Mean F1 and EM over paired predictions and gold-answer lists."""
    f1s, ems = [], []
    for prediction, answers in zip(predictions, golds, strict=True):
        f1s.append(f1_score(prediction, answers))
        ems.append(exact_match(prediction, answers))
    if not f1s:
        return {"f1": float("nan"), "exact_match": float("nan")}
    return {"f1": sum(f1s) / len(f1s), "exact_match": sum(ems) / len(ems)}


def macro_f1(gold: Sequence[int], predicted: Sequence[int]) -> float:
    """The unweighted mean of each class's F1 over the classes that occur among the gold
    labels or the predictions (as scikit-learn's ``f1_score(average="macro")``); a class
    with no true positive scores 0."""
    gold, predicted = list(gold), list(predicted)
    classes = sorted(set(gold) | set(predicted))
    if not classes:
        return float("nan")
    scores = []
    for c in classes:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == c and p == c)
        wrong = sum(1 for g, p in zip(gold, predicted, strict=True) if (g == c) != (p == c))
        scores.append(2 * tp / (2 * tp + wrong) if tp else 0.0)
    return sum(scores) / len(scores)
