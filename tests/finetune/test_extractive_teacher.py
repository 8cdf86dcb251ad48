"""The extractive teacher drafts answerable pairs from any format; the model teacher's prompt, retry and
fallback rule."""

from __future__ import annotations

import json

import pytest

from almanac.core.embedder import HashingEmbedder
from almanac.core.types import ChunkRecord
from almanac.finetune.answer_checks import PassageReader, type_fits
from almanac.finetune.curation import answer_support
from almanac.finetune.extractive_teacher import ExtractiveTeacher, base_verb, which_question
from almanac.finetune.fallback_writer import FallbackWriter, build_writer, corpus_examples
from almanac.finetune.generation import GenerationConfig, Generator
from almanac.finetune.question_writer import QuestionWriter
from almanac.indexer.readers import read_bytes
from tests.fakes import HashingRetriever, ScriptedChatModel

HTML = b"""<html><head><title>Stores</title></head><body><nav>Home | Shop</nav><main>
<h1>Stores and Opening Hours</h1><h2>Oslo</h2>
<p>Thorvald Meyers gate 51, 0555 Oslo, Norway.</p>
<p>Saturday: 10:00-17:00</p><p>Sunday: 12:00-16:00</p>
<p>The Oslo store was opened on 6 April 2013 by Maja Olsen.</p></main></body></html>"""
MARKDOWN = b"""# Warranty Policy
## Frames
- Steel and aluminium frames: 10 years.
- Carbon-fibre frames: 6 years.

| Rider height | Size |
|---|---|
| 150-160 cm | XS |
| 160-168 cm | S |

Northwind Cycles is a bicycle maker based in Bergen, Norway.
Members may borrow at most six volumes at a time.
"""
PDF_TEXT = (  # hard-wrapped lines and a plain heading line, as PDF text comes out
    "RETURNS POLICY\nBicycles\nIn 1999 the company moved to a purpose-built factory in\n"
    "Asane, north of Bergen. Customers may return a bicycle within 30 days of\ndelivery."
)
CODE = (
    "heapq.nlargest(n, iterable, key=None)\nReturn a list with the n largest elements from the dataset "
    "defined by iterable. Equivalent to sorted(iterable, key=key, reverse=True)[:n].\nNew in version 3.4."
)
ROW = "table: bikes | id: 5 | name: Storm SL | weight_kg: 7.2 | price_eur: 4290.0"


def sections(name: str, data: bytes) -> list[tuple[str, str]]:
    return [(s.text, s.locator) for s in read_bytes(name, data, 1_000_000).sections]


def answerable(passage: str, heading: str, minimum: int) -> list[tuple[str, str]]:
    drafts, unparsable = ExtractiveTeacher(seed=1).write(passage, 10, heading)
    assert unparsable == 0 and len(drafts) >= minimum
    for d in drafts:
        assert answer_support(d.answer, passage) == 1.0, d
        assert type_fits(d.question, d.answer), d
        assert d.teacher == "extractive" and d.rationale
    reader = PassageReader(HashingEmbedder(256))
    assert all(reader.reproduces([(d.question, d.answer, passage) for d in drafts])), drafts
    return [(d.question, d.answer) for d in drafts]


def test_html_sections_give_heading_and_date_questions():
    pairs = [p for text, locator in sections("stores.html", HTML) for p in answerable(text, locator, 0)]
    assert ('According to "Oslo", what is listed for Sunday?', "12:00-16:00") in pairs
    assert ("When was the Oslo store opened?", "6 April 2013") in pairs


def test_markdown_gives_pair_table_definition_and_ability_questions():
    pairs = [p for text, locator in sections("w.md", MARKDOWN) for p in answerable(text, locator, 1)]
    assert ('According to "Frames", what is listed for Steel and aluminium frames?', "10 years") in pairs
    assert ('In the table under "Frames", what is the Size for Rider height 160-168 cm?', "S") in pairs
    assert ("What is Northwind Cycles?", "a bicycle maker based in Bergen") in pairs
    assert ("What may members do?", "borrow at most six volumes at a time") in pairs


def test_pdf_text_joins_wrapped_lines_and_skips_page_locators():
    pairs = answerable(PDF_TEXT, "page 3", 2)
    assert ("When did the company move to a purpose-built factory in Asane?", "1999") in pairs
    assert ("What may customers do?", "return a bicycle within 30 days of delivery") in pairs
    assert not any("page 3" in q for q, _ in pairs)


def test_code_signatures_give_what_default_and_version_questions():
    pairs = answerable(CODE, "heapq", 3)
    assert ("What is the default value of the key parameter of heapq.nlargest?", "None") in pairs
    assert ("In which version was heapq.nlargest added?", "3.4") in pairs
    assert any(q == "What does heapq.nlargest do?" and a.startswith("Return a list") for q, a in pairs)
    reverse = (
        "Which heapq function returns a list with the n largest elements from the dataset "
        "defined by iterable?"
    )
    assert (reverse, "heapq.nlargest") in answerable(CODE, "heapq", 4)  # the reverse: the name is the answer


@pytest.mark.parametrize(
    ("name", "description", "question"),
    [
        ("re.fullmatch", "If the whole string matches the pattern", None),  # not an imperative
        (
            "Counter.most_common",
            "Return a list of the n most common elements",
            "Which Counter method returns",
        ),
        ("shlex.join", "Concatenate the tokens of the list", "Which shlex function concatenates"),
        ("copy", "Copy the file src to dst", "Which function copies"),
        ("uuid.uuid4", "The same as uuid1", None),
    ],
)
def test_which_questions_name_what_the_description_does(name: str, description: str, question: str | None):
    made = which_question(name, description)
    assert made == question if question is None else made and made.startswith(question + " ")


def test_rows_give_attribute_lookups():
    pairs = answerable(ROW, "bikes id=5", 3)
    assert ("What is the weight_kg of the bikes with name Storm SL?", "7.2") in pairs


def test_drafts_are_deterministic_and_seeded():
    teacher = ExtractiveTeacher(seed=3)
    text, locator = sections("w.md", MARKDOWN)[0]
    assert teacher.write(text, 2, locator) == teacher.write(text, 2, locator)
    assert teacher.write(text, 2, locator)[0][0].wrong_answer != teacher.write(text, 2, locator)[0][0].answer


@pytest.mark.parametrize(
    ("past", "base"), [("moved", "move"), ("opened", "open"), ("stopped", "stop"), ("built", "build")]
)
def test_base_verb(past, base):
    assert base_verb(past) == base


def reply(*items: tuple[str, str]) -> str:
    return json.dumps(
        [{"question": q, "answer": a, "rationale": "r.", "wrong_answer": "x"} for q, a in items]
    )


def test_question_writer_retries_once_and_shows_a_corpus_example():
    chat = ScriptedChatModel(default="still no JSON")
    chat.enqueue("Sure, here are questions!", reply(("When did the company move?", "1999")))
    teacher = ExtractiveTeacher()
    examples = [(PDF_TEXT, "", teacher.write(PDF_TEXT, 2)[0]), (ROW, "bikes", teacher.write(ROW, 2)[0])]
    drafts, unparsable = QuestionWriter(chat, examples=examples).write(PDF_TEXT, 2, "page 3")
    assert [d.answer for d in drafts] == ["1999"] and unparsable == 0 and len(chat.calls) == 2
    first = chat.calls[0][0]
    assert (
        ROW in first[1].content
        and '"bikes"' in first[1].content
        and json.loads(first[2].content)[0]["question"].startswith("What is the")
    )
    assert '(from the section "page 3")' in first[-1].content
    assert chat.calls[1][0][-1].content.startswith("That was not usable")
    assert QuestionWriter(chat).write(PDF_TEXT, 2) == ([], 1)  # two bad replies: one unparsable passage


def test_fallback_tops_up_failing_model_drafts_with_extractive_ones():
    chat = ScriptedChatModel()
    chat.enqueue(reply(("What is the name of the company?", "1999"), ("When did the company move?", "1999")))
    writer = FallbackWriter(QuestionWriter(chat), ExtractiveTeacher())
    drafts, _ = writer.write(PDF_TEXT, 2)
    assert [d.teacher for d in drafts] == ["model", "model", "extractive"]  # one failed: one extractive added
    chat.enqueue(
        reply(("When did the company move?", "1999"), ("What may customers do?", "return a bicycle"))
    )
    assert [d.teacher for d in writer.write(PDF_TEXT, 2)[0]] == ["model", "model"]  # both pass: no fallback


def test_once_the_model_budget_is_spent_only_extractive_drafts_are_written():
    chat = ScriptedChatModel()
    good = reply(("When did the company move?", "1999"), ("What may customers do?", "return a bicycle"))
    chat.enqueue(good, good)
    ticks = iter([0.0, 30.0, 30.0, 70.0])  # each model write "takes" 30 then 40 seconds
    writer = FallbackWriter(QuestionWriter(chat), ExtractiveTeacher(), budget_s=60, clock=lambda: next(ticks))
    assert [d.teacher for d in writer.write(PDF_TEXT, 2)[0]] == ["model", "model"]
    assert [d.teacher for d in writer.write(PDF_TEXT, 2)[0]] == ["model", "model"]  # 30 s < 60: asked
    drafts, _ = writer.write(PDF_TEXT, 2)  # 70 s spent: the model is not asked again
    assert drafts and {d.teacher for d in drafts} == {"extractive"} and len(chat.calls) == 2
    assert writer.spent_s == 70.0


def test_generation_reports_yield_per_teacher_with_the_default_writer():
    chunks = [
        ChunkRecord(1, 1, "default", "r.pdf", "page 1", PDF_TEXT, "document"),
        ChunkRecord(2, 2, "default", "w.md", "Frames", sections("w.md", MARKDOWN)[0][0], "document"),
        ChunkRecord(3, 3, "default", "bikes", "bikes id=5", ROW, "row"),
    ]
    chat = ScriptedChatModel(default="no idea")
    writer = build_writer("auto", chat, chunks, seed=0)
    examples = corpus_examples(chunks, ExtractiveTeacher())
    assert isinstance(writer, FallbackWriter) and examples
    assert all(d.wrong_answer != d.answer for _, _, drafts in examples for d in drafts)
    config = GenerationConfig(refusal_fraction=0.0, sycophancy_fraction=0.0)
    result = Generator(writer, HashingRetriever(chunks), config).run(chunks, "default", progress=False)
    teachers = {result.teachers[(r.source_chunk_id, r.kind, r.question)] for r in result.records}
    assert teachers == {"extractive", "rows"} and result.unparsable == 2  # the model failed: fallback wrote
    assert isinstance(build_writer("extractive", None, chunks), ExtractiveTeacher)
