"""Generation: a scripted teacher and the corpus yield every record kind, each tied to its source chunk."""

from __future__ import annotations

import pytest

from almanac.core.errors import InputError, ModelError
from almanac.core.prompt import NO_ANSWER
from almanac.finetune.generation import GenerationConfig, Generator
from almanac.finetune.question_writer import QuestionWriter, parse_drafts
from almanac.finetune.records import QARecord, read_records, write_records
from almanac.finetune.row_questions import parse_row
from tests.fakes import PassageTeacher, ScriptedChatModel
from tests.finetune.questions import TEACHER_DRAFTS


def run(chunks, retriever, teacher, **config) -> tuple[list[QARecord], int]:
    result = Generator(QuestionWriter(teacher), retriever, GenerationConfig(**config)).run(
        chunks, "default", progress=False
    )
    return result.records, result.unparsable


def test_generation_yields_each_kind_tied_to_its_source(chunks, retriever):
    records, unparsable = run(
        chunks, retriever, PassageTeacher(TEACHER_DRAFTS), refusal_fraction=1.0, sycophancy_fraction=1.0
    )
    by_id = {c.id: c for c in chunks}
    assert unparsable == 0
    assert {r.kind for r in records} == {"qa", "refusal", "sycophancy", "row"}
    for record in records:
        chunk = by_id[record.source_chunk_id]
        assert (record.passage, record.source, record.document_id) == (
            chunk.text,
            chunk.source,
            chunk.document_id,
        )
        if record.kind == "refusal":
            assert record.target == NO_ANSWER
            assert all(ref.chunk_id != chunk.id and record.answer not in ref.text for ref in record.context)
        else:
            assert record.answer in chunk.text and record.target.endswith(record.answer)
            assert "[1]" in record.target and record.context[0].chunk_id == chunk.id
    syc = next(r for r in records if r.kind == "sycophancy")
    assert syc.false_claim == "8:15" and syc.false_claim in syc.question
    assert syc.false_claim in syc.target and syc.answer in syc.target


def test_row_lookups_need_no_teacher(chunks, retriever):
    teacher = ScriptedChatModel()
    rows = [c for c in chunks if c.kind == "row"]
    records, _ = run(rows, retriever, teacher, rows_per_chunk=3)
    assert teacher.calls == []
    assert len(records) == 6 and {r.kind for r in records} == {"row"}
    weight = next(r for r in records if "weight_kg" in r.question and "Trail 29" in r.question)
    assert weight.answer == "12.5"


def test_garbage_teacher_counts_unparsable_then_fails_clearly(chunks, retriever):
    docs = [c for c in chunks if c.kind == "document"]
    teacher = ScriptedChatModel(default="Sure! Questions: what is a harbor? {not json")
    with pytest.raises(ModelError, match="nothing usable for 8 passages"):
        run(docs, retriever, teacher)


def test_partly_garbage_teacher_keeps_the_good_replies(chunks, retriever):
    docs = [c for c in chunks if c.kind == "document"]
    teacher = ScriptedChatModel(default="no idea")
    teacher.enqueue(PassageTeacher(TEACHER_DRAFTS).reply_for(docs[0].text), '[{"question": "Q?"}]')
    records, unparsable = run(docs, retriever, teacher, refusal_fraction=0.0, sycophancy_fraction=0.0)
    assert [r.kind for r in records] == ["qa"] and unparsable == 7


def test_empty_collection_is_a_clear_error(retriever):
    with pytest.raises(InputError, match="has no chunks"):
        run([], retriever, ScriptedChatModel())


def test_max_chunks_samples_repeatably(chunks, retriever):
    first, _ = run(chunks, retriever, PassageTeacher(TEACHER_DRAFTS), max_chunks=4, seed=3)
    again, _ = run(chunks, retriever, PassageTeacher(TEACHER_DRAFTS), max_chunks=4, seed=3)
    assert first == again and len({r.source_chunk_id for r in first}) <= 4


@pytest.mark.parametrize(
    ("reply", "n_drafts", "unparsable"),
    [
        ('[{"question": "Q?", "answer": "A", "rationale": "R.", "wrong_answer": "B"}]', 1, 0),
        (
            '{"question": "Q?", "answer": "A", "rationale": "R.", "wrong_answer": "B"}\n{"question": "x"}',
            1,
            1,
        ),
        (
            '[{"question": "Q?", "answer": "A", "rationale": "R.", "wrong_answer": "B"}',
            1,
            0,
        ),  # truncated list
        ("[]", 0, 1),
        ("Q: When?\nA: 9\nR: It says 9.\nW: 10\n\nQ: Who?\nA: Ada\nR: Ada did.\nW: Bob", 2, 0),
        ("1. Question: When?\n   Answer: 9\n   Rationale: It says 9.\n   Wrong answer: 10", 1, 0),
        ("Question: When?\n\nQuestion: When?\n\nQuestion: When?", 0, 3),  # a small model looping
        ("Q: When?\nA: 9\nA: 10\nR: r\nW: w", 0, 2),  # a repeated key starts a new item: two halves
        ("", 0, 1),
        ('[{"question": "", "answer": "A", "rationale": "R.", "wrong_answer": "B"}]', 0, 1),
    ],
)
def test_parse_drafts_is_robust(reply, n_drafts, unparsable):
    drafts, bad = parse_drafts(reply)
    assert (len(drafts), bad) == (n_drafts, unparsable)


def test_records_round_trip_through_jsonl(tmp_path, chunks, retriever):
    records, _ = run(
        chunks, retriever, PassageTeacher(TEACHER_DRAFTS), refusal_fraction=1.0, sycophancy_fraction=1.0
    )
    path = tmp_path / "data.jsonl"
    assert write_records(path, records) == len(records)
    assert read_records(path) == records


def test_parse_row_reads_both_row_formats():
    assert parse_row("table: cars | name: Zip | horsepower: 90").table == "cars"
    assert parse_row("bikes | id: 3 | name: Trail 29").key == ("name", "Trail 29")
    assert parse_row("just a sentence") is None


def test_a_looping_teacher_counts_at_most_the_questions_asked_for():
    reply = "Q: When?\nA: 9\nR: The sign says 9.\nW: 10\n" + "R: The sign says 9.\n" * 50
    drafts, unparsable = parse_drafts(reply, limit=2)
    assert len(drafts) == 1 and unparsable == 2
    assert parse_drafts(reply)[1] == 50
