"""The question writer: asks a teacher chat model for QA drafts about a passage and parses its reply.

The teacher is shown one worked example, preferably taken from the corpus itself (`examples`: extractive
drafts about another chunk, see almanac.finetune.fallback_writer), then asked for a JSON list of objects with
``question``, ``answer``, ``rationale``, ``wrong_answer``; the request names the chunk's section and says what
a good answer is (a span copied from the passage, of the kind the wh-word asks for; no yes/no questions).
A reply with no usable item is retried once, shown back to the model with a reminder of the format. The
older line format (``Q:``, ``A:``, ``R:``, ``W:`` per question) is still accepted. Small models return prose,
repeat lines or stop half-way, so the parser keeps every complete item it finds and counts the rest as
unparsable; it never raises on a bad reply:

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from almanac.core.errors import ModelError
from almanac.core.ports import ChatModel
from almanac.core.types import ChatMessage

log = logging.getLogger(__name__)

MAX_FIELD_CHARS = 500  # longer than this is not a short answer or a one-sentence rationale

TEACHER_SYSTEM = (
    "You write quiz questions about a passage, to train a question-answering assistant. "
    "Reply with a JSON list only, in the format of the example."
)
TEACHER_INSTRUCTIONS = (
    "Write {n} different questions that the passage answers. Reply with a JSON list of {n} objects with "
    'the keys "question" (understandable without the passage: name what it is about; no yes/no questions), '
    '"answer" (a short span copied word for word from the passage that answers exactly what is asked: a name '
    'for "who", a date for "when", a number for "how many"), "rationale" (the sentence of the passage that '
    'gives the answer) and "wrong_answer" (a plausible but wrong answer of the same kind).'
)
RETRY_REQUEST = (
    'That was not usable. Reply with only a JSON list of objects with the keys "question", "answer", '
    '"rationale" and "wrong_answer", about the passage above.'
)
EXAMPLE_PASSAGE = "The Brightwater bridge opened in 1932 and carries two railway tracks over the river Lune."
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
    teacher: str = field(default="model", repr=False, compare=False)  # who wrote it, for the yield report


EXAMPLE_DRAFTS = (
    QADraft("When did the Brightwater bridge open?", "1932", "The bridge opened in 1932.", "1958"),
    QADraft(
        "What does the Brightwater bridge carry over the river Lune?",
        "two railway tracks",
        "The bridge carries two railway tracks over the river Lune.",
        "a motorway",
    ),
)
Example = tuple[str, str, Sequence[QADraft]]  # passage, its heading, drafts: shown as a worked example


class DraftWriter(Protocol):
    """Anything that drafts questions about a passage: the model's QuestionWriter, the extractive teacher."""

    def write(self, passage: str, n: int, heading: str = "") -> tuple[list[QADraft], int]:
        """Up to `n` drafts about `passage` (its section `heading`), and how many items were unparsable."""
        ...


def _request(passage: str, n: int, heading: str = "") -> str:
    where = f' (from the section "{heading}")' if heading else ""
    return f"Passage{where}:\n<<<\n{passage.strip()}\n>>>\n\n" + TEACHER_INSTRUCTIONS.format(n=n)


def example_reply(drafts: Sequence[QADraft]) -> str:
    """The JSON list a teacher should answer with for these drafts."""
    items = [{name: getattr(d, name) for name in _FIELDS} for d in drafts]
    return json.dumps(items, ensure_ascii=False, indent=1)


def teacher_messages(
    passage: str, n: int, heading: str = "", examples: Sequence[Example] = ()
) -> list[ChatMessage]:
    """The request sent to the teacher for `n` drafts about `passage`, after one worked example (the first
    of `examples` about another passage; the built-in one when none is left)."""
    shot = next((e for e in examples if e[0].strip() != passage.strip() and e[2]), None)
    shot_passage, shot_heading, shot_drafts = shot or (EXAMPLE_PASSAGE, "", EXAMPLE_DRAFTS)
    return [
        ChatMessage("system", TEACHER_SYSTEM),
        ChatMessage("user", _request(shot_passage, len(shot_drafts), shot_heading)),
        ChatMessage("assistant", example_reply(shot_drafts)),
        ChatMessage("user", _request(passage, n, heading)),
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
    """Writes QA drafts for passages with a teacher chat model, retrying once when a reply is unusable."""

    name = "model"

    def __init__(
        self, teacher: ChatModel, tokens_per_question: int = 96, examples: Sequence[Example] = ()
    ) -> None:
        self.teacher = teacher
        self.tokens_per_question = tokens_per_question  # one short JSON item; more only feeds a looping model
        self.examples = tuple(examples)

    def write(self, passage: str, n: int, heading: str = "") -> tuple[list[QADraft], int]:
        """Up to `n` drafts about `passage`, and how many of the teacher's items were unparsable (in the
        last reply: a retry that succeeds leaves nothing unparsable)."""
        messages = teacher_messages(passage, n, heading, self.examples)
        budget = self.tokens_per_question * n + 16
        drafts: list[QADraft] = []
        unparsable = 1
        for attempt in (1, 2):
            try:
                reply = self.teacher.complete(messages, budget).text
            except ModelError as exc:  # one failed call must not end a long run; all failing is caught later
                log.warning("teacher call failed error=%r", exc)
                return [], 1
            drafts, unparsable = parse_drafts(reply, limit=n)
            if drafts or attempt == 2:
                break
            messages = [*messages, ChatMessage("assistant", reply), ChatMessage("user", RETRY_REQUEST)]
        return drafts, unparsable
