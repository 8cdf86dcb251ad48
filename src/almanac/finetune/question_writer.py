"""The question writer: asks a teacher chat model for QA drafts about a passage and parses its reply.

The teacher is asked for a strict JSON list. Small models often wrap it in prose or code fences, truncate it,
or emit one object per line, so the parser takes every JSON object it can find that has the four fields and
counts the rest as unparsable; it never raises on a bad reply:

    >>> parse_drafts('Sure! ```json\\n[{"question": "Q?", "answer": "A", "rationale": "R.", '
    ...              '"wrong_answer": "B"}, {"question": 3}]```')
    ([QADraft(question='Q?', answer='A', rationale='R.', wrong_answer='B')], 1)
    >>> parse_drafts("I cannot help with that.")
    ([], 1)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from almanac.core.errors import ModelError
from almanac.core.ports import ChatModel
from almanac.core.types import ChatMessage

log = logging.getLogger(__name__)

MAX_FIELD_CHARS = 500  # longer than this is not a short answer or a one-sentence rationale

TEACHER_SYSTEM = (
    "You write reading-comprehension questions about a passage for training a question-answering assistant. "
    "Reply with JSON only, no prose."
)
TEACHER_INSTRUCTIONS = (
    "Write {n} different questions that the passage answers. For each, give:\n"
    '- "question": a question a user could ask without seeing the passage;\n'
    '- "answer": the short answer, copied word for word from the passage;\n'
    '- "rationale": one sentence explaining, from the passage, why that is the answer;\n'
    '- "wrong_answer": a plausible but false answer that the passage contradicts.\n'
    'Reply with a JSON list only, like [{{"question": "...", "answer": "...", "rationale": "...", '
    '"wrong_answer": "..."}}].'
)
_FIELDS = ("question", "answer", "rationale", "wrong_answer")


@dataclass(frozen=True, slots=True)
class QADraft:
    """A question about a passage as the teacher wrote it, before any curation."""

    question: str
    answer: str
    rationale: str
    wrong_answer: str


def teacher_messages(passage: str, n: int) -> list[ChatMessage]:
    """The request sent to the teacher for `n` drafts about `passage`."""
    user = f"Passage:\n<<<\n{passage.strip()}\n>>>\n\n" + TEACHER_INSTRUCTIONS.format(n=n)
    return [ChatMessage("system", TEACHER_SYSTEM), ChatMessage("user", user)]


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
    if not all(isinstance(v, str) and v.strip() and len(v) <= MAX_FIELD_CHARS for v in values):
        return None
    return QADraft(*(v.strip() for v in values))


def parse_drafts(reply: str) -> tuple[list[QADraft], int]:
    """(drafts, unparsable): a reply with nothing usable counts as one unparsable."""
    items: list[Any] = []
    for value in _json_values(reply):
        items.extend(value if isinstance(value, list) else [value])
    drafts = [d for d in map(_draft, items) if d is not None]
    unparsable = len(items) - len(drafts)
    return drafts, unparsable if drafts else max(unparsable, 1)


class QuestionWriter:
    """Writes QA drafts for passages with a teacher chat model."""

    def __init__(self, teacher: ChatModel, max_tokens: int = 512) -> None:
        self.teacher = teacher
        self.max_tokens = max_tokens

    def write(self, passage: str, n: int) -> tuple[list[QADraft], int]:
        """Up to `n` drafts about `passage`, and how many of the teacher's items were unparsable."""
        try:
            reply = self.teacher.complete(teacher_messages(passage, n), self.max_tokens).text
        except ModelError as exc:  # one failed call must not end a long run; all failing is caught later
            log.warning("teacher call failed error=%r", exc)
            return [], 1
        drafts, unparsable = parse_drafts(reply)
        return drafts[:n], unparsable
