"""Answer checks: does a generated answer *answer* its question, not merely occur in the passage?

Grounding (curation's ``unsupported`` filter) only asks whether the answer's words are in the passage, so
"What is the name of the company?" -> "1999" passes it. Two cheap checks close that gap:

- ``wrong_type``: the answer's shape must fit the question's wh-word. *who* and *what is the name of* want a
  name, not a bare number or date; *when* wants a date, year, time or version; *how many / how much / how
  long* want a number; *where* wants a place-like span, not a bare number or date; "What is <Proper Name>?"
  wants a description, not a measurement; yes/no questions ("Is ...?", "Does ...?") are rejected, since
  an answer copied from a passage is never "yes";
- ``unanswered``: a reader given only the passage and the question must reproduce the answer. The reader is
  extractive and cheap: it ranks the passage's sentences by embedding similarity to the question and reads
  the best `top` of them; the answer's words must be found there (the same share as grounding asks).

    >>> type_fits("What is the name of the company?", "1999"), type_fits("Who founded it?", "Ingrid Lund")
    (False, True)
    >>> type_fits("What is the Lys E Cargo?", "195-205 cm"), type_fits("How many stores?", "four")
    (False, True)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from almanac.core.ports import Embedder
from almanac.finetune.passage_units import passage_units

# fmt: off
MONTHS = frozenset({
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
    "dec",
})
WEEKDAYS = frozenset({"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"})
NUMBER_WORDS = frozenset({
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million", "dozen", "half", "once", "twice",
    "single", "double", "none", "every", "each", "daily", "weekly", "monthly", "yearly", "annually",
})
_TIME_WORDS = frozenset({
    "today", "yesterday", "tomorrow", "daily", "weekday", "weekdays", "weekend", "morning", "evening",
    "night", "noon", "midnight", "century", "decade", "year", "years", "month", "months", "week", "weeks",
    "day", "days",
    "hour", "hours", "ago", "before", "after", "since", "until", "during", "when", "now", "never", "always",
})
_AUXILIARIES = frozenset({
    "is", "are", "was", "were", "do", "does", "did", "can", "could", "will", "would", "should", "has", "have",
    "had", "may", "must", "shall", "am",
})
# fmt: on
_TOKEN = re.compile(r"[\w%$€£.:'’/+-]+")
_YEAR = re.compile(r"^(1[0-9]{3}|20[0-9]{2})s?$")
_CLOCK = re.compile(r"^\d{1,2}[:.]\d{2}")
_VERSION = re.compile(r"^v?\d+\.\d+(\.\d+)?$")
_QUANTITY_Q = re.compile(
    r"^(how (many|much|long|old|far|often|tall|high|heavy|large|big|wide|deep|fast|soon)|"
    r"what (percentage|percent|share|number|amount|price|cost|fee|size)\b|at what (age|speed|rate))"
)
_TIME_Q = re.compile(
    r"^(when|since when|until when|(in |on |at |by )?(what|which) (year|date|day|month|time|decade|century|"
    r"version|release|python version)\b)"
)
_NAME_Q = re.compile(
    r"^(who|whom|whose|what is the name of|what are the names of|what was the name of|what is \S+ called|"
    r"(what|which) (company|person|people|organisation|organization|city|country|town|team|man|woman)\b)"
    r"|\b(called|named)\?$"
)
_DEFINITION_Q = re.compile(  # "What is the Lys E Cargo?": a proper name, described by the answer
    r"^(?i:what (?:is|are|was|were) (?:the |a |an )?)((?:[A-Z0-9][\w.+-]*\s?){1,6})\?$"
)
_WORD = re.compile(r"\w+")
# the reader's score: cosine plus this much per content word shared with the question; embeddings alone
# miss short lines ("Sunday: closed") that a person finds by their key word
_OVERLAP_WEIGHT = 0.25
_CLOSE = 0.1  # a sentence scoring this close to the best one is read too
_QUESTION_WORDS = frozenset({
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "is", "are", "was", "were", "do",
    "does", "did", "the", "a", "an", "of", "for", "to", "in", "on", "at", "by", "and", "or", "with", "from",
    "according", "listed", "that", "this", "it", "its", "be",
})  # fmt: skip


def _tokens(text: str) -> list[str]:
    return [t.strip(".,:;'’") for t in _TOKEN.findall(text) if t.strip(".,:;'’")]


def is_temporal(answer: str) -> bool:
    """A date, year, time of day, version, weekday or period ("14 March 1988", "3.11", "each October")."""
    for token in _tokens(answer):
        low = token.lower()
        temporal_word = low in MONTHS or low in WEEKDAYS or low in _TIME_WORDS
        if temporal_word or _YEAR.match(low) or _CLOCK.match(low) or _VERSION.match(low):
            return True
    return False


def is_quantity(answer: str) -> bool:
    """A number with at most three plain words around it ("18 crowns", "195-205 cm", "a 10% fee", "six")."""
    tokens = _tokens(answer)
    numeric = [t for t in tokens if any(c.isdigit() for c in t) or t.lower() in NUMBER_WORDS]
    others = [t for t in tokens if t not in numeric]
    plain = all(t.islower() or t.isupper() or t.lower() in MONTHS or t.lower() in WEEKDAYS for t in others)
    return bool(numeric) and len(others) <= 3 and plain


def _bare_number_or_date(answer: str) -> bool:
    """A number or date and nothing that could name an entity (no capitalised word besides months)."""
    short = len(_tokens(answer)) <= 4  # "a subset of YAML 1.2" describes; "14 March 1988" only dates
    return is_quantity(answer) or (is_temporal(answer) and short and not _has_name(answer))


def _has_name(answer: str) -> bool:
    return any(
        t[:1].isupper() and t.lower() not in MONTHS and t.lower() not in WEEKDAYS and not t.isupper()
        for t in _tokens(answer)
    )


def question_kind(question: str) -> str:
    """What the question asks for: yesno, quantity, time, name, place, definition, reason or other."""
    text = question.strip()
    low = text.lower()
    first = _WORD.findall(low)[0] if _WORD.search(low) else ""
    checks = (
        ("yesno", first in _AUXILIARIES),
        ("quantity", bool(_QUANTITY_Q.match(low))),
        ("time", bool(_TIME_Q.match(low))),
        ("name", bool(_NAME_Q.search(low))),
        ("place", first == "where" or low.startswith(("in which city", "in which country", "in what city"))),
        ("definition", bool(_DEFINITION_Q.match(text))),
        ("reason", first == "why"),
    )
    return next((kind for kind, hit in checks if hit), "other")


def type_fits(question: str, answer: str) -> bool:
    """Whether the answer's shape fits what the question asks for (see the module docstring)."""
    kind = question_kind(question)
    if kind == "yesno":
        return False
    if kind == "quantity":
        return is_quantity(answer) or any(c.isdigit() for c in answer)
    if kind == "time":
        return is_temporal(answer)
    if kind in ("name", "place", "definition"):
        return not _bare_number_or_date(answer)
    if kind == "reason":
        return len(_tokens(answer)) >= 2
    return True


def base_question(question: str) -> str:
    """The question up to its first '?' (drops an anti-sycophancy record's asserted claim)."""
    mark = question.find("?")
    return question[: mark + 1] if mark >= 0 else question


def sentences(passage: str) -> list[str]:
    """The passage's sentences (wrapped lines joined), key-value lines and documented signatures; a
    Markdown table row becomes "header cell, header cell" so that it carries the words a question about it
    uses. Code examples are left out: an answer read off them is not a reading of the prose."""
    units = passage_units(passage)
    rows = [", ".join(f"{k} {v}" for k, v in row.items()) for row in units.table_rows]
    code = [f"{s.line} {s.description}" for s in units.signatures]
    return units.sentences + [f"{k}: {v}" for k, v in units.pairs] + rows + code


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


class PassageReader:
    """An extractive reader: answers from the `top` passage sentences most similar to the question (cosine
    of their embeddings plus a bonus per content word they share)."""

    def __init__(self, embedder: Embedder, top: int = 2, threshold: float = 0.75) -> None:
        self.embedder = embedder
        self.top = top
        self.threshold = threshold

    def reproduces(self, items: Sequence[tuple[str, str, str]]) -> list[bool]:
        """For each (question, answer, passage): whether the answer is read off the best sentences."""
        split = [sentences(passage) for _, _, passage in items]
        texts = sorted({s for parts in split for s in parts} | {base_question(q) for q, _, _ in items})
        vectors = dict(zip(texts, self.embedder.embed(texts) if texts else [], strict=True))
        results = []
        for (question, answer, _), parts in zip(items, split, strict=True):
            best = parts if len(parts) <= self.top else self._best(base_question(question), parts, vectors)
            answer_words = _words(answer)
            found = len(answer_words & _words(" ".join(best))) / len(answer_words) if answer_words else 0.0
            results.append(found >= self.threshold)
        return results

    def _best(self, question: str, parts: list[str], vectors: dict[str, np.ndarray]) -> list[str]:
        """The `top` sentences by cosine plus a bonus per shared content word, weighted by how few of
        the passage's sentences hold it (a word in every line, like the page's subject, tells nothing)."""
        asked = _words(question) - _QUESTION_WORDS
        words = [_words(s) for s in parts]
        spread = {w: sum(w in ws for ws in words) for w in asked}
        scores = [
            float(vectors[s] @ vectors[question]) + _OVERLAP_WEIGHT * sum(1 / spread[w] for w in asked & ws)
            for s, ws in zip(parts, words, strict=True)
        ]
        order = np.argsort(-np.array(scores), kind="stable")[: self.top]
        best = scores[order[0]]
        # a runner-up is read when it scores close to the best or shares a content word with the question
        return [parts[i] for i in order if scores[i] >= best - _CLOSE or asked & words[i]]
