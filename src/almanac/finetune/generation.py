"""Generation: a collection's chunks -> QA records of four kinds, before curation.

- ``qa``: the teacher's question about a passage; target = rationale, citation, then the short answer;
- ``sycophancy``: the same question with a false answer asserted by the user; target corrects it politely;
- ``refusal``: the question shown with retrieved chunks from *other* documents that do not contain the
  answer; target = core.prompt.NO_ANSWER;
- ``row``: lookups of a database row's attributes, built from the row text with no teacher.

Which QA drafts also yield a sycophancy or refusal record is drawn with a seeded RNG, so a run is repeatable
given the same teacher replies.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from tqdm.auto import tqdm

from almanac.core.errors import InputError, ModelError
from almanac.core.prompt import origin_of
from almanac.core.types import ChunkRecord
from almanac.finetune.ports import Retriever
from almanac.finetune.question_writer import DraftWriter, QADraft
from almanac.finetune.records import QARecord, SourceRef
from almanac.finetune.row_questions import row_records
from almanac.finetune.yield_report import TeacherKey, teacher_key

log = logging.getLogger(__name__)

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class GenerationConfig:
    """How much to generate, and how."""

    questions_per_chunk: int = 3
    rows_per_chunk: int = 2
    max_chunks: int | None = None
    refusal_fraction: float = 0.25
    sycophancy_fraction: float = 0.25
    top_k: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        counts = (self.questions_per_chunk, self.rows_per_chunk, self.top_k, self.max_chunks or 1)
        if min(counts) < 1 or not all(0 <= f <= 1 for f in (self.refusal_fraction, self.sycophancy_fraction)):
            raise InputError("generation counts must be at least 1 and fractions within [0, 1]")


@dataclass(slots=True)
class GenerationResult:
    """Records produced, how many teacher items could not be parsed, and who wrote each record."""

    records: list[QARecord] = field(default_factory=list)
    unparsable: int = 0
    passages: int = 0
    teachers: dict[TeacherKey, str] = field(default_factory=dict)

    def add(self, record: QARecord, teacher: str) -> None:
        """Append a record written by `teacher` (see almanac.finetune.yield_report)."""
        self.records.append(record)
        self.teachers[teacher_key(record)] = teacher


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def pick_chunks(chunks: Sequence[ChunkRecord], limit: int | None, seed: int) -> list[ChunkRecord]:
    """All chunks, or a seeded sample of `limit` of them in their original order."""
    if limit is None or limit >= len(chunks):
        return list(chunks)
    keep = sorted(random.Random(seed).sample(range(len(chunks)), limit))
    return [chunks[i] for i in keep]


def refusal_context(
    record: QARecord, retriever: Retriever, collection: str, top_k: int
) -> tuple[SourceRef, ...]:
    """Retrieved chunks for the record's question from other documents, none containing its answer."""
    answer = _normal(record.answer)
    hits = retriever.search(record.question, collection, top_k * 3)
    refs = [
        SourceRef(h.chunk_id, origin_of(h.source, h.locator), h.text)
        for h in hits
        if h.document_id != record.document_id and h.source != record.source and answer not in _normal(h.text)
    ]
    return tuple(refs[:top_k])


def draft_records(chunk: ChunkRecord, draft: QADraft) -> tuple[QARecord, QARecord]:
    """The grounded QA record for a draft, and its anti-sycophancy twin."""
    gold = (SourceRef(chunk.id, origin_of(chunk.source, chunk.locator), chunk.text),)
    common = (chunk.id, chunk.document_id, chunk.source, chunk.text, gold)
    qa = QARecord("qa", draft.question, draft.answer, draft.rationale, *common)
    claim = f"{draft.question} I am quite sure the answer is {draft.wrong_answer}."
    sycophancy = QARecord("sycophancy", claim, draft.answer, draft.rationale, *common, draft.wrong_answer)
    return qa, sycophancy


class Generator:
    """Turns chunks into QA records with a question writer (teacher) and a retriever (for refusals)."""

    def __init__(
        self, writer: DraftWriter, retriever: Retriever | None, config: GenerationConfig | None = None
    ) -> None:
        self.writer = writer
        self.retriever = retriever
        self.config = config or GenerationConfig()
        self._rng = random.Random(self.config.seed)

    def _from_passage(self, chunk: ChunkRecord, collection: str, result: GenerationResult) -> None:
        heading = chunk.locator  # the section path, which the question may need to be understood alone
        drafts, unparsable = self.writer.write(chunk.text, self.config.questions_per_chunk, heading)
        result.unparsable += unparsable
        result.passages += 1
        for draft in drafts:
            qa, sycophancy = draft_records(chunk, draft)
            result.add(qa, draft.teacher)
            distinct = _normal(draft.wrong_answer) != _normal(draft.answer)
            if distinct and self._rng.random() < self.config.sycophancy_fraction:
                result.add(sycophancy, draft.teacher)
            if self.retriever is not None and self._rng.random() < self.config.refusal_fraction:
                context = refusal_context(qa, self.retriever, collection, self.config.top_k)
                if context:  # the refusal keeps the withheld answer so curation can re-check the context
                    refusal = replace(qa, kind="refusal", rationale="", context=context, target="")
                    result.add(refusal, draft.teacher)

    def run(self, chunks: Sequence[ChunkRecord], collection: str, progress: bool = True) -> GenerationResult:
        """Records for the chunks of `collection`; raises InputError when there are none to work from."""
        if not chunks:
            raise InputError(
                f"collection {collection!r} has no chunks; ingest documents or rows into it first "
                "(`almanac ingest PATH --collection C`)"
            )
        picked = pick_chunks(chunks, self.config.max_chunks, self.config.seed)
        self._rng = random.Random(self.config.seed)  # each run draws the same choices
        result = GenerationResult()
        for chunk in tqdm(picked, desc="generate", unit="chunk", disable=not progress):
            if chunk.kind == "row":
                for record in row_records(chunk, self.config.rows_per_chunk, self._rng):
                    result.add(record, "rows")
            else:
                self._from_passage(chunk, collection, result)
        log.info(
            "generated records=%d unparsable=%d passages=%d",
            len(result.records),
            result.unparsable,
            result.passages,
        )
        if result.passages and not any(r.kind == "qa" for r in result.records):
            raise ModelError(
                f"the teacher returned nothing usable for {result.passages} passages "
                f"({result.unparsable} unparsable replies); use a stronger teacher "
                "(--teacher-model FOLDER or --teacher-url URL) or --teacher extractive"
            )
        return result
