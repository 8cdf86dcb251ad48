"""What the reader is given and what is made of its reply: focused sources, the relevance gate, follow-up
questions, claims checked against the sources, and streamed markers cleaned as they go."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from almanac.core.embedder import HashingEmbedder
from almanac.core.settings import AnswerSettings, Settings
from almanac.core.types import ChatMessage, Hit
from almanac.server.answering.citation_stream import CitationFilter
from almanac.server.answering.focus import SourceFocus, split_sentences, standalone_query
from almanac.server.answering.support import SupportChecker
from almanac.server.app import create_app
from tests.fakes import ScriptedChatModel
from tests.server.app_fixtures import build_services

LONG = (
    "The harbor opened in 1894. Its lighthouse is made of granite. Fishing boats leave at dawn. "
    "The market sells cod and herring. Ferries cross to Vell twice a day. The harbor master is Ada Brell. "
    "Storms close the harbor in January."
)


def _hit(chunk_id: int, text: str, kind: str = "document") -> Hit:
    return Hit(chunk_id, 1.0 / chunk_id, text, f"doc{chunk_id}.md", "", kind)  # type: ignore[arg-type]


def test_focus_ranks_by_best_sentence_and_keeps_the_matching_sentences_in_order() -> None:
    focus = SourceFocus(HashingEmbedder(512), AnswerSettings(focus_sentences=2, long_chars=50))
    hits = [_hit(1, "Bread rests for 14 hours."), _hit(2, LONG)]
    focused = focus.focus("Who is the harbor master?", hits, keep=1)

    assert [h.chunk_id for h in focused.hits] == [2]  # the retriever's second hit matches best
    kept = split_sentences(focused.hits[0].text.replace(" … ", "\n").replace("…", "\n"))
    assert "The harbor master is Ada Brell." in kept and len([s for s in kept if s]) == 2
    assert focused.hits[0].text.index("harbor") >= 0 and len(focused.hits[0].text) < len(LONG)
    assert 0 < focused.relevance <= 1.0


def test_rows_and_short_passages_are_kept_whole() -> None:
    focus = SourceFocus(HashingEmbedder(512), AnswerSettings(focus_sentences=1, long_chars=500))
    row = _hit(1, "table: bikes | id: 1 | name: Trail 29 | weight_kg: 12.5", "row")
    short = _hit(2, "Short text. Two sentences.")
    focused = focus.focus("Trail 29 weight", [row, short], keep=2)
    assert {h.text for h in focused.hits} == {row.text, short.text}


def test_follow_up_questions_carry_the_conversation_into_retrieval() -> None:
    history = [
        ChatMessage("user", "Tell me about the Trail 29"),
        ChatMessage("assistant", "It is a bike [1]."),
    ]
    assert standalone_query("How much does it weigh?", history, 2) == (
        "Tell me about the Trail 29\nIt is a bike.\nHow much does it weigh?"  # markers dropped
    )
    assert standalone_query("How much does it weigh?", history, 0) == "How much does it weigh?"
    assert standalone_query("Hello", [], 2) == "Hello"


def test_follow_up_retrieves_the_subject_of_the_earlier_turn(
    client: TestClient, chat: ScriptedChatModel
) -> None:
    messages = [
        {"role": "user", "content": "Which bike is the Road Racer?"},
        {"role": "assistant", "content": "A red bike [1]."},
        {"role": "user", "content": "What is its weight in kg?"},
    ]
    body = client.post("/v1/chat/completions", json={"model": "almanac", "messages": messages}).json()
    sources = [s["text"] for s in body["sources"]]
    assert any("Road Racer" in text for text in sources), sources


@pytest.mark.parametrize(
    ("answer", "cited", "supported"),
    [
        ("The harbor master is Ada Brell [2].", [1], True),  # wrong marker: the supporting source is cited
        ("Ada Brell [1].", [1], True),
        ("The harbor opened in 1894 [1]. Its mayor is Tom Vane [1].", [1], False),
        ("The provided sources do not answer this question.", [], True),
    ],
)
def test_claims_are_attributed_to_the_sources_that_support_them(
    answer: str, cited: list[int], supported: bool
) -> None:
    checker = SupportChecker(HashingEmbedder(512))
    result = checker.check(answer, [LONG, "Bread rests for 14 hours."], marked=[])
    assert result.cited == cited
    assert result.supported is supported


def test_unsupported_claims_are_flagged_in_the_response(client: TestClient, chat: ScriptedChatModel) -> None:
    chat.enqueue("Mount Kessik erupted in 1821 [1]. Its summit is 4,102 metres high [1].")
    body = client.post("/v1/query", json={"question": "When did Mount Kessik erupt?"}).json()
    assert body["supported"] is False
    assert [c["supported"] for c in body["claims"]] == [True, False]


def test_a_question_below_the_relevance_threshold_is_refused_without_the_model(settings: Settings) -> None:
    strict = settings.model_copy(update={"answer": AnswerSettings(min_relevance=0.99)})
    chat = ScriptedChatModel()
    with TestClient(create_app(services=build_services(strict, chat))) as client:
        body = client.post("/v1/query", json={"question": "What is the airspeed of a swallow?"}).json()
    assert body["refused"] is True and body["cited"] == [] and chat.calls == []


def test_streamed_markers_are_cleaned_even_when_split_over_pieces() -> None:
    markers = CitationFilter(n_sources=3)
    pieces = ["It", " is 7 [", "3", "][", "12", "] or [2,", " 9] [x] [", "4"]
    out = "".join(markers.feed(p) for p in pieces) + markers.flush()
    assert out == "It is 7 [3] or [2] [x] [4"  # [12] and 9 point at no source; "[4" never closed
