"""The yield report: kept / generated per record kind and per teacher, and a sample of kept pairs.

A record's teacher is who wrote its question: ``model`` (the chat model), ``extractive`` (the extractive
teacher) or ``rows`` (row lookups, written from the row with no teacher); refusal and anti-sycophancy
records inherit their QA draft's teacher. Generation records it by `teacher_key`, which survives curation
(a kept record gets new context, never a new question).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence

from almanac.finetune.records import QARecord

TeacherKey = tuple[int, str, str]
SAMPLE_FIELD_CHARS = 60


def teacher_key(record: QARecord) -> TeacherKey:
    """What identifies a record across curation: its source chunk, kind and question."""
    return (record.source_chunk_id, record.kind, record.question)


def teacher_of(record: QARecord, teachers: Mapping[TeacherKey, str]) -> str:
    """Who wrote the record's question (``rows`` for row lookups, ``model`` when unknown)."""
    return "rows" if record.kind == "row" else teachers.get(teacher_key(record), "model")


def yields(
    generated: Sequence[QARecord], kept: Sequence[QARecord], teachers: Mapping[TeacherKey, str]
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """[kept, generated] per kind and per teacher."""
    tables: list[dict[str, list[int]]] = []
    for label in (lambda r: r.kind, lambda r: teacher_of(r, teachers)):
        made, left = Counter(map(label, generated)), Counter(map(label, kept))
        tables.append({name: [left[name], made[name]] for name in sorted(made)})
    return tables[0], tables[1]


def kept_sample(
    kept: Sequence[QARecord], teachers: Mapping[TeacherKey, str], n: int = 8, seed: int = 0
) -> list[dict[str, str]]:
    """A seeded sample of kept QA and row pairs: kind, teacher, question, answer."""
    pairs = [r for r in kept if r.kind in ("qa", "row")]
    picked = sorted(random.Random(seed).sample(range(len(pairs)), min(n, len(pairs))))
    return [
        {"kind": r.kind, "teacher": teacher_of(r, teachers), "question": r.question, "answer": r.answer}
        for r in (pairs[i] for i in picked)
    ]


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SAMPLE_FIELD_CHARS else text[: SAMPLE_FIELD_CHARS - 3] + "..."


def yield_lines(by_kind: Mapping[str, list[int]], by_teacher: Mapping[str, list[int]]) -> list[str]:
    """'yield qa  12/30 (40%)' lines, per kind then per teacher."""
    lines = []
    for scope, table in (("kind", by_kind), ("teacher", by_teacher)):
        for name, (kept, made) in table.items():
            share = f"{100 * kept / made:.0f}%" if made else "-"
            lines.append(f"yield {scope} {name:<11} {kept:>5}/{made:<5} ({share})")
    return lines


def sample_table(sample: Sequence[Mapping[str, str]]) -> str:
    """The sample as a plain-text table."""
    if not sample:
        return "(no kept pairs)"
    rows = [("kind", "teacher", "question", "answer")]
    rows += [(s["kind"], s["teacher"], _cut(s["question"]), _cut(s["answer"])) for s in sample]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)
