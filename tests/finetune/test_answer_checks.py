"""Answer checks: curation rejects answers that do not answer their question, and keeps the ones that do."""

from __future__ import annotations

import pytest

from almanac.core.embedder import HashingEmbedder
from almanac.core.types import ChunkRecord
from almanac.finetune.answer_checks import PassageReader, question_kind, type_fits
from almanac.finetune.curation import curate
from almanac.finetune.records import QARecord, SourceRef
from tests.fakes import HashingRetriever

HISTORY = (
    "In 1999 the company moved to a purpose-built factory in Åsane, north of Bergen, and hired its first\n"
    "twenty employees. The first aluminium model, the Skarv road bike, followed in 2004.\n"
    "Ingrid Halvorsen retired in 2009. Maja Olsen, who had joined as a welder in 1996, became chief\n"
    "executive on 1 September 2009 and still leads the company."
)
SIZES = (
    "The Fjord Tourer and the Lys E come in four sizes with a lower top tube for easy mounting.\n"
    "| Rider height | Frame |\n|--------------|-------|\n| 150–165 cm | 46 cm |\n| 165–178 cm | 51 cm |\n"
    "| 178–190 cm | 56 cm |\n| 190–205 cm | 61 cm |\n"
    "The Lys E Cargo is one size and fits riders from 155 to 195 cm."
)
HOURS = (
    "Strandkaien 8, 5013 Bergen, Norway. Phone +47 55 30 12 00.\nMonday to Friday: 09:00–18:00\n"
    "Saturday: 10:00–16:00\nSunday: closed\n"
    "The Bergen workshop opens at 08:00 on weekdays for commuters who drop off a bike on the way to work."
)


@pytest.mark.parametrize(
    ("question", "answer", "fits"),
    [
        ("What is the name of the company?", "1999", False),  # the issue's first example
        ("What is the Lys E Cargo?", "195-205 cm", False),  # the issue's second example
        ("Who became chief executive in 2009?", "Maja Olsen", True),
        ("Who became chief executive in 2009?", "1 September 2009", False),
        ("When did Ingrid Halvorsen retire?", "2009", True),
        ("When did Ingrid Halvorsen retire?", "Ingrid Halvorsen", False),
        ("How many employees did the company first hire?", "twenty employees", True),
        ("How many employees did the company first hire?", "Åsane", False),
        ("Where did the company move in 1999?", "a purpose-built factory in Åsane", True),
        ("Where did the company move in 1999?", "1999", False),
        ("Is the Bergen store open on Sundays?", "closed", False),  # yes/no
        ("What is Northwind Cycles?", "a bicycle maker based in Bergen", True),
        ("What is the mooring fee at Kestrel Harbor?", "18 crowns", True),
        ("Which Python version added math.cbrt?", "3.11", True),
    ],
)
def test_answer_type_must_fit_the_wh_word(question, answer, fits):
    assert type_fits(question, answer) is fits


def test_question_kinds():
    kinds = ["Does it rain?", "How long is the warranty?", "In which year?", "Who?", "Where is it?", "Why?"]
    assert [question_kind(q) for q in kinds] == ["yesno", "quantity", "time", "name", "place", "reason"]


def test_reader_reproduces_only_answers_the_passage_gives_to_the_question():
    reader = PassageReader(HashingEmbedder(256))
    items = [
        ("When did Ingrid Halvorsen retire?", "2009", HISTORY),
        ("According to Bergen, what is listed for Sunday?", "closed", HOURS),
        ("What frame fits a rider of 165–178 cm on the Lys E?", "51 cm", SIZES),
        # an answer that is in the passage, but not where the question points
        ("What is the Lys E Cargo?", "195-205 cm", SIZES),
        ("Who moved to a purpose-built factory in Åsane?", "Maja Olsen", HISTORY),
    ]
    assert reader.reproduces(items) == [True, True, True, False, False]


def _record(text: str, question: str, answer: str, chunk_id: int) -> QARecord:
    gold = (SourceRef(chunk_id, "samples.md", text),)
    return QARecord("qa", question, answer, "From the passage.", chunk_id, chunk_id, "s.md", text, gold)


def test_curation_rejects_the_issue_examples_and_keeps_right_pairs():
    chunks = [
        ChunkRecord(i, i, "default", f"doc{i}.md", "", text, "document")
        for i, text in enumerate([HISTORY, SIZES, HOURS], start=1)
    ]
    records = [
        _record(HISTORY, "What is the name of the company?", "1999", 1),
        _record(SIZES, "What is the Lys E Cargo?", "195 cm", 2),
        _record(HISTORY, "Who founded the factory in Åsane?", "twenty employees", 1),
        _record(HISTORY, "Who moved to a purpose-built factory in Åsane?", "Maja Olsen", 1),
        _record(HISTORY, "When did Ingrid Halvorsen retire?", "2009", 1),
        _record(HOURS, "What are the Saturday opening hours of the Bergen store?", "10:00–16:00", 3),
    ]
    kept, report = curate(
        records, embedder=HashingEmbedder(256), retriever=HashingRetriever(chunks), collection="default"
    )
    assert [r.answer for r in kept] == ["2009", "10:00–16:00"]
    assert report.dropped["wrong_type"] == 3 and report.dropped["unanswered"] == 1
    assert report.yield_by_kind == {"qa": [2, 6]} and report.yield_by_teacher == {"model": [2, 6]}
    assert {s["answer"] for s in report.sample} == {"2009", "10:00–16:00"}
    assert "yield kind qa" in report.table() and "sample of kept pairs" in report.table()
