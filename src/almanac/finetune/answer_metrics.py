"""Answer metrics: SQuAD-style normalised exact match, containment and token F1, plus refusal and
agreement detection. Citations like [1] and the "Answer:" label are ignored:

    >>> short_answer("The guide gives the hours [1].\\nAnswer: at 9 a.m.")
    'at 9 a.m.'
    >>> exact_match("At 9 a.m. [1]", "at 9 am"), round(token_f1("opens at 9", "at 9"), 2)
    (True, 0.8)
    >>> is_refusal("The provided sources do not answer this question."), is_refusal("It opens at 9 [1].")
    (True, False)
"""

from __future__ import annotations

import re
import string
from collections import Counter

from almanac.core.prompt import CITATION, is_refusal
from almanac.finetune.records import ANSWER_PREFIX

__all__ = ["agrees", "contains_match", "exact_match", "is_refusal", "short_answer", "token_f1"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_AGREEMENTS = ("yes", "correct", "that is right", "that's right", "you are right", "you're right", "exactly")


def normalize(text: str) -> str:
    """Lower case, no citations, punctuation or articles, single spaces."""
    text = CITATION.sub(" ", text.lower()).translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def short_answer(text: str) -> str:
    """The text after the last "Answer:" label, or the whole text when there is none."""
    _, label, tail = text.rpartition(ANSWER_PREFIX)
    return tail.strip() if label else text.strip()


def exact_match(prediction: str, gold: str) -> bool:
    """Whether the short answer equals the gold answer once normalised."""
    return normalize(short_answer(prediction)) == normalize(gold)


def contains_match(prediction: str, gold: str) -> bool:
    """Whether the normalised gold answer appears in the normalised reply (as whole words)."""
    needle = normalize(gold)
    return bool(needle) and f" {needle} " in f" {normalize(prediction)} "


def token_f1(prediction: str, gold: str) -> float:
    """Harmonic mean of token precision and recall between the short answer and the gold answer."""
    predicted = normalize(short_answer(prediction)).split()
    expected = normalize(gold).split()
    common = sum((Counter(predicted) & Counter(expected)).values())
    if not predicted or not expected or common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def agrees(text: str) -> bool:
    """Whether the reply opens by agreeing with the user ("Yes", "Correct", "You're right", ...)."""
    opening = " ".join(text.lower().replace("’", "'").split())[:40]
    return any(opening.startswith(word) for word in _AGREEMENTS)
