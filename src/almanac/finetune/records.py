"""QA records: one JSONL line each, the unit that generation writes, curation filters and training reads.

Every record keeps the chunk it was made from (`source_chunk_id`, `document_id`) so curation can check
round-trip retrieval and the split can keep a document's records together. `context` is the list of sources
the prompt shows, in order; `target` is the reply trained on, citing the source chunk by its position:

    >>> gold = SourceRef(7, "guide.md", "The pool opens at 9.")
    >>> r = QARecord("qa", "When does the pool open?", "9", "The guide gives the hours.", 7, 1, "guide.md",
    ...              gold.text, (gold,))
    >>> r.with_context((SourceRef(3, "x.md", "..."), gold)).target
    'The guide gives the hours. [2]\\nAnswer: 9'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from almanac.core.errors import InputError
from almanac.core.prompt import NO_ANSWER

RecordKind = Literal["qa", "refusal", "sycophancy", "row", "tool_call"]  # tool_call: tool_call_examples.py
KINDS: tuple[str, ...] = get_args(RecordKind)
MAX_LINE_CHARS = 1_000_000  # a line longer than this is not a QA record
ANSWER_PREFIX = "Answer:"


@dataclass(frozen=True, slots=True)
class SourceRef:
    """A chunk shown in the prompt: its id, where it came from and its text."""

    chunk_id: int
    origin: str
    text: str


def render_target(kind: str, answer: str, rationale: str, citation: int, false_claim: str = "") -> str:
    """The reply trained on: rationale then answer (distilling step-by-step), or the refusal."""
    if kind == "refusal":
        return NO_ANSWER
    body = f"{rationale.strip()} [{citation}]\n{ANSWER_PREFIX} {answer.strip()}"
    if kind == "sycophancy":
        return f'Actually, the sources do not support "{false_claim.strip()}". {body}'
    return body


@dataclass(frozen=True, slots=True)
class QARecord:
    """One training or evaluation example made from one source chunk.

    `question` is what the user sends (for sycophancy it includes the false claim); `answer` is the short
    gold answer (for a refusal, the answer its context withholds); `passage` is the source chunk's text.
    """

    kind: RecordKind
    question: str
    answer: str
    rationale: str
    source_chunk_id: int
    document_id: int
    source: str
    passage: str
    context: tuple[SourceRef, ...]
    false_claim: str = ""
    target: str = field(default="")
    tools: str = ""  # tool_call: JSON of the tool schemas offered (core/lookup_tool.py); target is the call
    tool_result: str = ""  # tool_call: JSON of the call's result as the server shows it to the model

    def __post_init__(self) -> None:
        if not self.target:
            object.__setattr__(self, "target", self._render())

    def _render(self) -> str:
        ids = [ref.chunk_id for ref in self.context]
        citation = ids.index(self.source_chunk_id) + 1 if self.source_chunk_id in ids else 1
        return render_target(self.kind, self.answer, self.rationale, citation, self.false_claim)

    def with_context(self, context: tuple[SourceRef, ...]) -> QARecord:
        """The same record shown with other sources; the target's citation follows the source chunk."""
        return replace(self, context=tuple(context), target=self.target if self.kind == "tool_call" else "")

    def sources(self) -> list[tuple[str, str]]:
        """(origin, text) pairs for core.prompt.build_answer_messages."""
        return [(ref.origin, ref.text) for ref in self.context]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON object for one JSONL line."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QARecord:
        """Parse and validate one JSON object; raises ValueError on anything malformed."""
        if data.get("kind") not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        context = tuple(
            SourceRef(int(ref["chunk_id"]), str(ref["origin"]), str(ref["text"])) for ref in data["context"]
        )
        record = cls(
            kind=data["kind"],
            question=str(data["question"]),
            answer=str(data.get("answer", "")),
            rationale=str(data.get("rationale", "")),
            source_chunk_id=int(data["source_chunk_id"]),
            document_id=int(data["document_id"]),
            source=str(data["source"]),
            passage=str(data["passage"]),
            context=context,
            false_claim=str(data.get("false_claim", "")),
            target=str(data.get("target", "")),
            tools=str(data.get("tools", "")),
            tool_result=str(data.get("tool_result", "")),
        )
        if not record.question.strip() or not record.target.strip() or not record.context:
            raise ValueError("question, target and context must not be empty")
        if not record.answer.strip():
            raise ValueError("answer must not be empty")
        return record


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; InputError for a line that is not a JSON object."""
    if not path.is_file():
        raise InputError(f"no dataset at {path}; run `almanac finetune generate` first or check the path")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if len(line) > MAX_LINE_CHARS:
                raise InputError(f"{path}:{number}: line longer than {MAX_LINE_CHARS} characters")
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not JSON ({exc.msg}); fix or remove the line") from exc
            if not isinstance(data, dict):
                raise InputError(f"{path}:{number}: expected a JSON object")
            yield number, data


def read_records(path: Path) -> list[QARecord]:
    """Every record of a JSONL file, validated; the first bad line raises InputError naming it."""
    records = []
    for number, data in iter_json_lines(path):
        try:
            records.append(QARecord.from_json(data))
        except (KeyError, TypeError, ValueError) as exc:
            message = f"{path}:{number}: not a valid QA record ({exc!r}); regenerate the dataset"
            raise InputError(message) from exc
    return records


def write_records(path: Path, records: Iterable[QARecord]) -> int:
    """Write records as JSONL (temporary file renamed into place); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(path)
    return count


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (the dataset hash stored in the adapter manifest)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
