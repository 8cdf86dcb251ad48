"""The question writer: asks a teacher chat model for QA drafts about a passage and parses its reply.

The teacher is shown one worked example, then asked for the same line format (``Q:``, ``A:``, ``R:``, ``W:``
per question), which even a 135M model imitates far more often than JSON. Replies in JSON (a list or
objects with ``question``, ``answer``, ``rationale``, ``wrong_answer``) are accepted too. Small models still
return prose, repeat lines or stop half-way, so the parser keeps every complete item it finds and counts the
rest as unparsable; it never raises on a bad reply:

    >>> parse_drafts("Q: When?\\nA: at 9\\nR: The sign says 9.\\nW: at 10\\n\\nQ: Who?\\nA: Ada")
    ([QADraft(question='When?', answer='at 9', rationale='The sign says 9.', wrong_answer='at 10')], 1)
    >>> parse_drafts('```json [{"question": "Q?", "answer": "A", "rationale": "R.", "wrong_answer": "B"}]```')
    ([QADraft(question='Q?', answer='A', rationale='R.', wrong_answer='B')], 0)
    >>> parse_drafts("I cannot help with that.")
    ([], 1)
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from almanac.core.errors import ModelError
from almanac.core.ports import ChatModel
from almanac.core.types import ChatMessage

log = logging.getLogger(__name__)

MAX_FIELD_CHARS = 500  # longer than this is not a short answer or a one-sentence rationale

TEACHER_SYSTEM = (
    "You write quiz questions about a passage, to train a question-answering assistant. "
    "Follow the answer format of the example exactly."
)
TEACHER_INSTRUCTIONS = (
    "Write {n} different questions that the passage answers. For each question write four lines:\n"
    "Q: the question, understandable without the passage\n"
    "A: the short answer, copied word for word from the passage\n"
    "R: one sentence from the passage's facts explaining the answer\n"
    "W: a plausible but wrong answer"
)
EXAMPLE_PASSAGE = "The Brightwater bridge opened in 1932 and carries two railway tracks over the river Lune."
EXAMPLE_REPLY = (
    "Q: When did the Brightwater bridge open?\nA: 1932\nR: The passage says the bridge opened in 1932.\n"
    "W: 1958\n\nQ: What does the Brightwater bridge carry over the river Lune?\nA: two railway tracks\n"
    "R: The bridge carries two railway tracks over the river.\nW: a motorway"
)
_FIELDS = ("question", "answer", "rationale", "wrong_answer")
_LINE = re.compile(
    r"^\s*(?:[-*]\s*|\d+[.)]\s*)?(q|a|r|w|question|answer|rationale|wrong answer|wrong)\s*:\s*(.+?)\s*$",
    re.IGNORECASE,
)
_LINE_KEYS = {"q": "question", "a": "answer", "r": "rationale", "w": "wrong_answer", "wrong": "wrong_answer"}


@dataclass(frozen=True, slots=True)
class QADraft:
    """A question about a passage as the teacher wrote it, before any curation."""

    question: str
    answer: str
    rationale: str
    wrong_answer: str


def _request(passage: str, n: int) -> str:
    return f"Passage:\n<<<\n{passage.strip()}\n>>>\n\n" + TEACHER_INSTRUCTIONS.format(n=n)


def teacher_messages(passage: str, n: int) -> list[ChatMessage]:
    """The request sent to the teacher for `n` drafts about `passage`, after one worked example."""
    return [
        ChatMessage("system", TEACHER_SYSTEM),
        ChatMessage("user", _request(EXAMPLE_PASSAGE, 2)),
        ChatMessage("assistant", EXAMPLE_REPLY),
        ChatMessage("user", _request(passage, n)),
    ]


def _line_items(text: str) -> list[dict[str, str]]:
    """Items of the Q/A/R/W line format; a 'Q:' line (or a repeated key) starts a new item."""
    items: list[dict[str, str]] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        name = match.group(1).lower().replace(" ", "_")
        key = _LINE_KEYS.get(name, name)
        if key == "question" or not items or key in items[-1]:
            items.append({})
        items[-1][key] = match.group(2)
    return items


def _json_values(text: str) -> list[Any]:
    """Every top-level JSON value that starts with '[' or '{' somewhere in `text`."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    pos = 0
    while pos < len(text):
        starts = [i for i in (text.find("[", pos), text.find("{", pos)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            pos = start + 1
            continue
        values.append(value)
        pos = end
    return values


def _draft(item: Any) -> QADraft | None:
    """A draft from one JSON object, or None when a field is missing, empty, not text or too long."""
    if not isinstance(item, dict):
        return None
    values = [item.get(name) for name in _FIELDS]
    texts = [v.strip() for v in values if isinstance(v, str) and v.strip() and len(v) <= MAX_FIELD_CHARS]
    if len(texts) != len(_FIELDS):
        return None
    return QADraft(*texts)


def parse_drafts(reply: str, limit: int | None = None) -> tuple[list[QADraft], int]:
    """(drafts, unparsable) for the items read until `limit` drafts are found.

    Unparsable counts items seen on the way, at most `limit` (a looping model's repeated lines are one
    failure, not hundreds); a reply with nothing usable counts as one.
    """
    items: list[Any] = []
    for value in _json_values(reply):
        items.extend(value if isinstance(value, list) else [value])
    if not items:
        items = _line_items(reply)
    drafts: list[QADraft] = []
    unparsable = 0
    for item in items:
        if limit is not None and len(drafts) >= limit:
            break
        draft = _draft(item)
        if draft is None:
            unparsable += 1
        else:
            drafts.append(draft)
    if limit is not None:
        unparsable = min(unparsable, limit)
    return drafts, unparsable if drafts else max(unparsable, 1)


class QuestionWriter:
    """Writes QA drafts for passages with a teacher chat model."""

    def __init__(self, teacher: ChatModel, tokens_per_question: int = 96) -> None:
        self.teacher = teacher
        self.tokens_per_question = tokens_per_question  # four short lines; more only feeds a looping model

    def write(self, passage: str, n: int) -> tuple[list[QADraft], int]:
        """Up to `n` drafts about `passage`, and how many of the teacher's items were unparsable."""
        try:
            budget = self.tokens_per_question * n
            reply = self.teacher.complete(teacher_messages(passage, n), budget).text
        except ModelError as exc:  # one failed call must not end a long run; all failing is caught later
            log.warning("teacher call failed error=%r", exc)
            return [], 1
        return parse_drafts(reply, limit=n)
