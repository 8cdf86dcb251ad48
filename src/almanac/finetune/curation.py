"""Curation, LIMA-style: fewer, better examples. Each filter drops records for one reason, in this order:

1. ``unparsable``  teacher output that was not a well-formed QA item (counted during generation);
2. ``unsupported`` the target is not backed by the passage: fewer than `support_threshold` of the answer's
   word tokens occur in the source passage (answers are meant to be copied from it). For a refusal the
   rule is reversed: its context must *not* contain the withheld answer;
3. ``wrong_type``  the answer's shape does not fit the question's wh-word (who -> a name, when -> a date,
   how many -> a number, "What is the name of ...?" -> not "1999"; yes/no questions): answer_checks.type_fits;
4. ``unanswered``  a reader given only the passage and the question does not reproduce the answer: the
   answer's words are not in the passage sentences most similar to the question (answer_checks.PassageReader);
5. ``duplicate``   a question whose embedding has cosine >= `duplicate_threshold` with an earlier kept
   question of the same kind (the same question may appear once as QA and once as a refusal);
6. ``round_trip``  retrieving with the question does not return the source chunk in the top k. A kept
   record's context becomes those retrieved chunks, as the server would show them, and its citation
   follows the source chunk's rank;
7. ``over_cap``    more than `max_per_source` records from one source chunk (a seeded choice keeps which).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from almanac.core.errors import InputError
from almanac.core.ports import Embedder
from almanac.core.prompt import origin_of
from almanac.finetune.answer_checks import PassageReader, base_question, type_fits
from almanac.finetune.ports import Retriever
from almanac.finetune.records import QARecord, SourceRef
from almanac.finetune.yield_report import TeacherKey, kept_sample, sample_table, yield_lines, yields

REASONS = ("unparsable", "unsupported", "wrong_type", "unanswered", "duplicate", "round_trip", "over_cap")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class CurationConfig:
    """Thresholds of the filters."""

    support_threshold: float = 0.75
    duplicate_threshold: float = 0.95
    top_k: int = 5
    max_per_source: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.support_threshold <= 1 or self.duplicate_threshold <= 0:
            raise InputError("--support-threshold must be in (0, 1] and --duplicate-threshold above 0")
        if self.top_k < 1 or self.max_per_source < 1:
            raise InputError("--top-k and --max-per-source must be at least 1")


@dataclass(slots=True)
class CurationReport:
    """Generated, kept, and dropped per reason; what was kept per kind and per split."""

    generated: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    kept_by_kind: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    yield_by_kind: dict[str, list[int]] = field(default_factory=dict)  # [kept, generated]
    yield_by_teacher: dict[str, list[int]] = field(default_factory=dict)
    sample: list[dict[str, str]] = field(default_factory=list)  # kept pairs: kind, teacher, question, answer

    def table(self) -> str:
        """A plain-text table for the terminal."""
        rows = [("generated", self.generated), ("kept", self.kept)]
        rows += [(f"dropped: {reason}", n) for reason, n in self.dropped.items()]
        rows += [(f"kept {kind}", n) for kind, n in sorted(self.kept_by_kind.items())]
        rows += [(f"split {name}", n) for name, n in self.splits.items()]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {n:>7}" for name, n in rows]
        lines += yield_lines(self.yield_by_kind, self.yield_by_teacher)
        return "\n".join([*lines, "", "sample of kept pairs:", sample_table(self.sample)])

    def save(self, path: Path) -> None:
        """Write the report as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


def answer_support(answer: str, passage: str) -> float:
    """Fraction of the answer's word tokens found in the passage (0.0 for an answer with no words)."""
    answer_words = _words(answer)
    return len(answer_words & _words(passage)) / len(answer_words) if answer_words else 0.0


def is_supported(record: QARecord, threshold: float) -> bool:
    """Whether the record's target is backed by its sources (see the module docstring, rule 2)."""
    if record.kind == "refusal":
        return all(answer_support(record.answer, ref.text) < threshold for ref in record.context)
    return answer_support(record.answer, record.passage) >= threshold


def drop_duplicates(records: Sequence[QARecord], embedder: Embedder, threshold: float) -> list[bool]:
    """Keep-mask: False for a question too similar to an earlier kept one of the same kind."""
    vectors = embedder.embed([r.question for r in records]) if records else np.zeros((0, 1))
    kept: dict[str, list[np.ndarray]] = {}
    mask = []
    for record, vector in zip(records, vectors, strict=True):
        previous = kept.setdefault(record.kind, [])
        duplicate = bool(previous) and float(np.max(np.stack(previous) @ vector)) >= threshold
        mask.append(not duplicate)
        if not duplicate:
            previous.append(vector)
    return mask


def round_trip(record: QARecord, retriever: Retriever, collection: str, top_k: int) -> QARecord | None:
    """The record shown with the chunks its question retrieves; None if its source chunk is not among them."""
    if record.kind == "refusal":
        return record
    hits = retriever.search(record.question, collection, top_k)[:top_k]
    if record.source_chunk_id not in {h.chunk_id for h in hits}:
        return None
    return record.with_context(
        tuple(SourceRef(h.chunk_id, origin_of(h.source, h.locator), h.text) for h in hits)
    )


def cap_mask(records: Sequence[QARecord], max_per_source: int, seed: int) -> list[bool]:
    """Keep-mask allowing at most `max_per_source` records per source chunk, chosen with a seeded shuffle."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    counts: Counter[int] = Counter()
    mask = [False] * len(records)
    for i in order:
        counts[records[i].source_chunk_id] += 1
        mask[i] = counts[records[i].source_chunk_id] <= max_per_source
    return mask


def curate(
    records: Sequence[QARecord],
    *,
    embedder: Embedder,
    retriever: Retriever,
    collection: str,
    config: CurationConfig | None = None,
    unparsable: int = 0,
    progress: bool = False,
    teachers: Mapping[TeacherKey, str] | None = None,
) -> tuple[list[QARecord], CurationReport]:
    """Apply the filters in order; returns the kept records and the report (with the yield per kind and
    per teacher, `teachers` naming who wrote each record: GenerationResult.teachers)."""
    config = config or CurationConfig()
    report = CurationReport(generated=len(records) + unparsable)
    report.dropped["unparsable"] = unparsable

    def keep(reason: str, items: Sequence[QARecord | None], mask: Sequence[bool]) -> list[QARecord]:
        report.dropped[reason] += sum(not ok for ok in mask)
        return [r for r, ok in zip(items, mask, strict=True) if ok and r is not None]

    current = keep("unsupported", records, [is_supported(r, config.support_threshold) for r in records])
    current = keep("wrong_type", current, [type_fits(base_question(r.question), r.answer) for r in current])
    reader = PassageReader(embedder, threshold=config.support_threshold)
    current = keep(
        "unanswered", current, reader.reproduces([(r.question, r.answer, r.passage) for r in current])
    )
    current = keep("duplicate", current, drop_duplicates(current, embedder, config.duplicate_threshold))
    bar = tqdm(current, desc="round-trip", unit="pair", disable=not progress)
    tripped = [round_trip(r, retriever, collection, config.top_k) for r in bar]
    current = keep("round_trip", tripped, [r is not None for r in tripped])
    current = keep("over_cap", current, cap_mask(current, config.max_per_source, config.seed))
    report.kept = len(current)
    report.kept_by_kind = dict(Counter(r.kind for r in current))
    report.yield_by_kind, report.yield_by_teacher = yields(records, current, teachers or {})
    if unparsable:  # unparsable items are the model's drafts that never became records
        report.yield_by_teacher.setdefault("model", [0, 0])[1] += unparsable
    report.sample = kept_sample(current, teachers or {}, seed=config.seed)
    return current, report
