"""Curation: each filter drops what it should and keeps what it should; the split leaks no document."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from almanac.core.embedder import HashingEmbedder
from almanac.core.types import ChunkRecord
from almanac.finetune.curation import REASONS, CurationConfig, answer_support, curate
from almanac.finetune.dataset_split import SPLITS, split_by_document
from almanac.finetune.records import QARecord, SourceRef


def qa(chunk: ChunkRecord, question: str, answer: str, kind: str = "qa", context=None) -> QARecord:
    gold = (SourceRef(chunk.id, chunk.source, chunk.text),)
    return QARecord(
        kind,
        question,
        answer,
        "Because the passage says so.",
        chunk.id,
        chunk.document_id,
        chunk.source,
        chunk.text,
        tuple(context) if context else gold,
    )


def run(records, retriever, **config):
    kept, report = curate(
        records,
        embedder=HashingEmbedder(256),
        retriever=retriever,
        collection="default",
        config=CurationConfig(**config),
    )
    assert report.generated == report.kept + sum(report.dropped.values())
    return kept, report


def test_answers_not_in_the_passage_are_dropped(chunks, retriever):
    ferry = chunks[0]
    good = qa(ferry, "When does the Kestrel Harbor ferry leave the north pier?", "7:40 every weekday")
    invented = qa(ferry, "Who captains the Kestrel Harbor ferry?", "Captain Morgan Lee")
    kept, report = run([good, invented], retriever)
    assert [r.question for r in kept] == [good.question]
    assert report.dropped["unsupported"] == 1
    assert answer_support("Captain Morgan Lee", ferry.text) == 0.0


def test_refusal_whose_context_holds_the_answer_is_dropped(chunks, retriever):
    ferry, cider = chunks[0], chunks[3]
    clean = qa(
        ferry,
        "When does the Kestrel Harbor ferry leave?",
        "7:40",
        "refusal",
        [SourceRef(cider.id, cider.source, cider.text)],
    )
    leaky = qa(
        ferry,
        "When does the Kestrel Harbor ferry depart?",
        "7:40",
        "refusal",
        [SourceRef(cider.id, cider.source, cider.text), SourceRef(ferry.id, ferry.source, ferry.text)],
    )
    kept, report = run([clean, leaky], retriever)
    assert kept == [clean] and report.dropped["unsupported"] == 1


def test_near_duplicate_questions_are_dropped_within_a_kind(chunks, retriever):
    orchard = chunks[2]
    first = qa(orchard, "Who planted the quince trees in the Vellmont orchard?", "Ada Brell")
    same = qa(orchard, "Who planted the quince trees in the Vellmont orchard ?", "Ada Brell")
    other = qa(orchard, "In which year were the Vellmont quince trees planted?", "1931")
    refusal = qa(
        orchard, first.question, "Ada Brell", "refusal", [SourceRef(chunks[5].id, "o", chunks[5].text)]
    )
    kept, report = run([first, same, other, refusal], retriever)
    assert [r.question for r in kept if r.kind == "qa"] == [first.question, other.question]
    assert [r.kind for r in kept].count("refusal") == 1
    assert report.dropped["duplicate"] == 1


def test_round_trip_keeps_only_questions_that_retrieve_their_source(chunks, retriever):
    telescope = chunks[4]
    findable = qa(telescope, "How large is the reflecting telescope at the Tarn Ridge observatory?", "61")
    lost = qa(telescope, "What size?", "61")
    kept, report = run([findable, lost], retriever, top_k=3)
    assert report.dropped["round_trip"] == 1 and len(kept) == 1
    record = kept[0]
    ids = [ref.chunk_id for ref in record.context]
    assert ids == [h.chunk_id for h in retriever.search(findable.question, "default", 3)]
    rank = ids.index(telescope.id) + 1
    assert f"[{rank}]" in record.target and record.target.endswith("Answer: 61")


def test_round_trip_citation_follows_the_source_rank(chunks, retriever):
    """A question that ranks a neighbour first must cite its source as [2], not [1]."""
    mooring = chunks[1]
    record = qa(
        mooring, "What is the mooring fee, and when does the Kestrel Harbor ferry leave?", "18 crowns"
    )
    hits = retriever.search(record.question, "default", 3)
    assert hits[0].chunk_id != mooring.id and mooring.id in [h.chunk_id for h in hits]  # the premise
    kept, _ = run([record], retriever, top_k=3)
    rank = [h.chunk_id for h in hits].index(mooring.id) + 1
    assert f"[{rank}]" in kept[0].target and "[1]" not in kept[0].target


def test_cap_per_source_keeps_at_most_n_and_is_repeatable(chunks, retriever):
    library = chunks[7]
    questions = [
        f"How many volumes may members of the Osric library borrow {w}?"
        for w in ("today", "at once", "per visit", "in total", "this week", "as a rule")
    ]
    records = [qa(library, q, "six volumes") for q in questions]
    kept, report = run(records, retriever, max_per_source=4, duplicate_threshold=1.01, seed=5)
    again, _ = run(records, retriever, max_per_source=4, duplicate_threshold=1.01, seed=5)
    assert len(kept) == 4 and report.dropped["over_cap"] == 2 and kept == again


def test_report_prints_and_saves(tmp_path, chunks, retriever):
    _, report = run([qa(chunks[0], "Who captains the ferry?", "nobody")], retriever)
    report.dropped["unparsable"] = 3
    text = report.table()
    assert all(reason in text for reason in REASONS)
    report.save(tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text())["dropped"]["unparsable"] == 3


def records_over(n_documents: int) -> list[QARecord]:
    chunk = ChunkRecord(1, 1, "default", "x", "", "text", "document")
    return [
        QARecord(
            "qa",
            f"q{i}",
            "a",
            "r",
            i,
            i % n_documents,
            f"doc{i % n_documents}.md",
            "a",
            (SourceRef(chunk.id, "x", "a"),),
        )
        for i in range(n_documents * 4)
    ]


@pytest.mark.parametrize("n_documents", [3, 10, 37])
def test_split_keeps_each_document_in_one_split(n_documents):
    records = records_over(n_documents)
    parts = split_by_document(records, validation=0.1, test=0.2, seed=7)
    owners = Counter(src for name in SPLITS for src in {r.source for r in parts[name]})
    assert set(owners.values()) == {1}  # no document in two splits
    everything = [r.question for name in SPLITS for r in parts[name]]
    assert sorted(everything) == sorted(r.question for r in records)
    assert all(parts[name] for name in SPLITS)
    assert split_by_document(records, validation=0.1, test=0.2, seed=7) == parts
