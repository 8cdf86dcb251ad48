"""The training set: validated QA records turned into trl's conversational prompt-completion rows.

The prompt is exactly what the server sends (core.prompt.build_answer_messages over the record's sources);
the completion is the record's target, so the loss falls on the reply only:

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
from almanac.core.lookup_tool import offer_tools
from almanac.core.prompt import build_answer_messages
from almanac.finetune.records import QARecord, file_sha256, read_records

if TYPE_CHECKING:
    from datasets import Dataset


def conversation(record: QARecord) -> dict[str, list[dict[str, str]]]:
    """One prompt-completion row in trl's conversational format."""
    messages = build_answer_messages(record.question, record.sources())
    if record.tools:  # an API-call record: the prompt offers the lookup tools, as the server's does
        messages = offer_tools(messages, json.loads(record.tools))
    return {
        "prompt": [{"role": m.role, "content": m.content} for m in messages],
        "completion": [{"role": "assistant", "content": record.target}],
    }


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

        rows: list[dict[str, Any]] = [conversation(r) for r in self.records]
        return Dataset.from_list(rows)
