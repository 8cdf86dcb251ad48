"""The training set: validated QA records turned into trl's conversational prompt-completion rows.

The prompt is exactly what the server sends (core.prompt.build_answer_messages over the record's sources);
the completion is the record's target, so the loss falls on the reply only. An API-call record with its
result gives two rows: the call, then the answer read from the result (the conversation the server's tool
loop holds at that point), so the model learns both to call and to use what the call returned:

    >>> from almanac.finetune.records import QARecord, SourceRef
    >>> gold = SourceRef(1, "g.md", "At 9.")
    >>> r = QARecord("qa", "When?", "9", "The guide says 9.", 1, 1, "g.md", "At 9.", (gold,))
    >>> row = conversation(r)
    >>> [m["role"] for m in row["prompt"]], row["completion"][0]["content"]
    (['system', 'user'], 'The guide says 9. [1]\\nAnswer: 9')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from almanac.core.errors import InputError
from almanac.core.lookup_tool import offer_tools, tool_message
from almanac.core.prompt import build_answer_messages
from almanac.core.types import ChatMessage
from almanac.finetune.records import ANSWER_PREFIX, QARecord, file_sha256, read_records

if TYPE_CHECKING:
    from datasets import Dataset


Row = dict[str, list[dict[str, str]]]


def _row(messages: list[ChatMessage], reply: str) -> Row:
    return {
        "prompt": [{"role": m.role, "content": m.content} for m in messages],
        "completion": [{"role": "assistant", "content": reply}],
    }


def _prompt(record: QARecord) -> list[ChatMessage]:
    messages = build_answer_messages(record.question, record.sources())
    if record.tools:  # an API-call record: the prompt offers the lookup tools, as the server's does
        messages = offer_tools(messages, json.loads(record.tools))
    return messages


def conversation(record: QARecord) -> Row:
    """The record's first prompt-completion row in trl's conversational format (its only one, but for an
    API-call record with a result: `conversations`)."""
    return _row(_prompt(record), record.target)


def conversations(record: QARecord) -> list[Row]:
    """Every row a record trains: the reply, and for an API-call record with its result, the answer."""
    first = conversation(record)
    if not record.tool_result:
        return [first]
    shown = [
        *_prompt(record),
        ChatMessage("assistant", record.target),
        tool_message(json.loads(record.tool_result)),
    ]
    return [first, _row(shown, f"{record.rationale.strip()}\n{ANSWER_PREFIX} {record.answer.strip()}")]


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """Records read from one JSONL file, with the file's SHA-256 (recorded in the adapter manifest)."""

    path: Path
    records: tuple[QARecord, ...]
    sha256: str

    @classmethod
    def load(cls, path: Path) -> TrainingSet:
        """Read and validate; an empty file or a malformed record raises InputError naming the problem."""
        records = tuple(read_records(path))
        if not records:
            raise InputError(
                f"dataset {path} has no records; run `almanac finetune generate` and check its report "
                "(curation may have dropped everything)"
            )
        return cls(path, records, file_sha256(path))

    def to_dataset(self) -> Dataset:
        """A `datasets.Dataset` of prompt-completion conversations."""
        from datasets import Dataset

        rows: list[dict[str, Any]] = [row for r in self.records for row in conversations(r)]
        return Dataset.from_list(rows)
