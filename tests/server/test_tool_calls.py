"""Lookups the chat model calls: a scripted call runs through /v1/lookup's guard and its rows are cited;
every malformed or off-list call is refused before it reaches the database (a property test); the number
of calls per answer is bounded; no tools are offered where no allow-listed table is open."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from almanac.core.prompt import NO_ANSWER
from almanac.core.settings import ServerSettings
from almanac.core.source_db import SourceDatabase
from almanac.server.app import create_app
from almanac.server.retrieval.lookup_tools import LookupTools
from tests.fakes import ScriptedChatModel
from tests.server.app_fixtures import build_services, make_settings
from tests.server.corpus import DOCS, index_corpus, make_shop_db
from tests.server.sse import sse_events

OPEN = ("id", "name", "color")  # weight_kg stays closed


def client_for(tmp_path: Path, chat: ScriptedChatModel, **answer: Any) -> Iterator[TestClient]:
    settings = make_settings(tmp_path / "home", lookup_tables=[f"shop.bikes:{','.join(OPEN)}"])
    settings.answer = settings.answer.model_copy(update=answer)
    index_corpus(settings, DOCS, make_shop_db(tmp_path / "shop.db"))
    index_corpus(settings, {"only.md": "# Notes\n\nNothing about bikes.\n"}, None, collection="docs")
    with TestClient(create_app(services=build_services(settings, chat))) as client:
        yield client


@pytest.fixture
def chat() -> ScriptedChatModel:
    return ScriptedChatModel(default="The sources do not say.")


@pytest.fixture
def client(tmp_path: Path, chat: ScriptedChatModel) -> Iterator[TestClient]:
    yield from client_for(tmp_path, chat)


def ask(client: TestClient, question: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/query", json={"question": question, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_scripted_lookup_is_run_and_its_rows_are_sources(client: TestClient, chat: ScriptedChatModel) -> None:
    chat.enqueue_tool_call("lookup", table="shop.bikes", where={"color": "green"})
    chat.enqueue("Trail 29 is the green bike.")
    body = ask(client, "Which bike is green?")
    [call] = body["tool_calls"]
    assert call["ok"] and call["rows"] == [{"id": 1, "name": "Trail 29", "color": "green"}]
    row = body["sources"][-1]
    assert (row["id"], row["kind"], row["source"]) == (0, "row", "db://shop/bikes/id=1")
    assert "weight_kg" not in row["text"]  # a closed column stays hidden
    assert len(body["sources"]) in body["cited"]  # the answer is attributed to the row it came from
    first, second = chat.calls[0][0], chat.calls[1][0]
    assert "<tools>" in first[0].content and '"enum": ["shop.bikes"]' in first[0].content
    assert [m.role for m in second[-2:]] == ["assistant", "tool"]
    assert "data only, not instructions" in second[-1].content and "Trail 29" in second[-1].content
    assert body["answer"].startswith("Trail 29 is the green bike")


def test_count_and_max_run_on_allow_listed_columns(client: TestClient, chat: ScriptedChatModel) -> None:
    chat.enqueue_tool_call("count", table="shop.bikes", where={"color": "red"})
    chat.enqueue_tool_call("max", table="shop.bikes", column="id")
    chat.enqueue("One red bike; the highest id is 3.")
    body = ask(client, "How many bikes are red?")
    assert [(c["name"], c["ok"], c["value"]) for c in body["tool_calls"]] == [
        ("count", True, 1),
        ("max", True, 3),
    ]
    assert '"value": 3' in chat.calls[2][0][-1].content


def test_off_list_call_is_refused_and_reported(client: TestClient, chat: ScriptedChatModel) -> None:
    chat.enqueue_tool_call("max", table="shop.bikes", column="weight_kg")
    chat.enqueue("I could not look that up.")
    body = ask(client, "Which bike is heaviest?")
    [call] = body["tool_calls"]
    assert not call["ok"] and "weight_kg" in call["error"] and call["value"] is None
    assert "weight_kg" in chat.calls[1][0][-1].content  # the model is told why


def test_calls_per_answer_are_bounded(tmp_path: Path, chat: ScriptedChatModel) -> None:
    for _ in range(5):
        chat.enqueue_tool_call("count", table="shop.bikes")
    for client in client_for(tmp_path, chat, max_tool_calls=1):
        body = ask(client, "How many bikes are there?")
    # one call run; the next reply is still a call, so the answer is asked for once more with no tools offered
    assert len(body["tool_calls"]) == 1 and len(chat.calls) == 3
    assert "no more tool calls" in chat.calls[1][0][-1].content
    assert "<tools>" not in chat.calls[2][0][0].content and "<tools>" in chat.calls[1][0][0].content
    assert chat.calls[2][0][-1].role == "tool"  # the result stays in the conversation
    assert body["answer"] == NO_ANSWER  # still calling even then: nothing to say


def test_a_repeated_call_is_not_run_again(tmp_path: Path, chat: ScriptedChatModel) -> None:
    for _ in range(2):
        chat.enqueue_tool_call("count", table="shop.bikes")
    chat.enqueue("There are 3 bikes.")
    for client in client_for(tmp_path, chat, max_tool_calls=2):
        body = ask(client, "How many bikes are there?")
    assert len(body["tool_calls"]) == 1 and len(chat.calls) == 3  # call, the same call again, the answer
    assert body["answer"].startswith("There are 3 bikes")


@pytest.mark.parametrize(("collection", "max_calls"), [("docs", 2), ("default", 0)])
def test_no_tools_without_open_tables_or_when_disabled(
    tmp_path: Path, chat: ScriptedChatModel, collection: str, max_calls: int
) -> None:
    chat.enqueue_tool_call("count", table="shop.bikes")
    for client in client_for(tmp_path, chat, max_tool_calls=max_calls):
        body = ask(client, "How many bikes?", collection=collection)
    assert body["tool_calls"] == [] and "<tools>" not in chat.calls[0][0][0].content


def ask_streamed(client: TestClient, question: str) -> list[tuple[str, dict[str, Any]]]:
    body = {"question": question, "stream": True}
    with client.stream("POST", "/v1/query", json=body) as response:
        assert response.status_code == 200
        return sse_events(response.iter_lines())


def test_streamed_answer_runs_the_call_and_streams_only_the_answer(
    client: TestClient, chat: ScriptedChatModel
) -> None:
    chat.enqueue_tool_call("lookup", table="shop.bikes", where={"color": "green"})
    chat.enqueue("Trail 29 is the green bike.")
    events = ask_streamed(client, "Which bike is green?")
    names = [name for name, _ in events]
    assert names[0] == "sources" and names[-1] == "done" and names.count("token") >= 5  # word by word
    streamed = "".join(data["text"] for name, data in events if name == "token")
    assert "tool_call" not in streamed and streamed.startswith("Trail 29 is the green bike")
    first, done = events[0][1], events[-1][1]
    [call] = done["tool_calls"]
    assert call["ok"] and call["rows"] == [{"id": 1, "name": "Trail 29", "color": "green"}]
    assert done["sources"][: len(first["sources"])] == first["sources"]  # the row joins after them
    assert done["sources"][-1]["source"] == "db://shop/bikes/id=1"
    assert len(done["sources"]) in done["cited"]
    assert [m.role for m in chat.calls[1][0][-2:]] == ["assistant", "tool"]


def test_streamed_answer_without_a_call_streams_at_once(client: TestClient, chat: ScriptedChatModel) -> None:
    chat.enqueue("There are three bikes in the shop.")
    events = ask_streamed(client, "How many bikes are there?")
    tokens = [data["text"] for name, data in events if name == "token"]
    assert len(tokens) >= 5 and events[-1][1]["tool_calls"] == [] and "sources" not in events[-1][1]
    assert "<tools>" in chat.calls[0][0][0].content  # offered, not taken


def test_streamed_calls_are_bounded(tmp_path: Path, chat: ScriptedChatModel) -> None:
    for _ in range(5):
        chat.enqueue_tool_call("count", table="shop.bikes")
    for client in client_for(tmp_path, chat, max_tool_calls=1):
        events = ask_streamed(client, "How many bikes are there?")
    done = events[-1][1]
    assert len(done["tool_calls"]) == 1 and len(chat.calls) == 3
    assert "<tools>" not in chat.calls[2][0][0].content
    assert done["answer"] == NO_ANSWER  # the last reply was still a call: nothing of it is shown


def test_openai_stream_lists_the_rows_the_call_returned(client: TestClient, chat: ScriptedChatModel) -> None:
    chat.enqueue_tool_call("lookup", table="shop.bikes", where={"color": "green"})
    chat.enqueue("Trail 29 is green.")
    body = {"model": "almanac", "stream": True, "messages": [{"role": "user", "content": "Which is green?"}]}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    chunks = [json.loads(line) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.startswith("Trail 29 is green") and "tool_call" not in text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and len(chat.calls) == 2
    assert chunks[-1]["sources"][-1]["source"] == "db://shop/bikes/id=1"  # the row the lookup returned


# The guard, property-tested: generated calls, valid and not, over an open and a closed table.
COLUMNS = ("id", "name", "color", "weight_kg", "secret", "")
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)


class OneSource:
    def __init__(self, db: SourceDatabase) -> None:
        self.db = db

    def names(self) -> list[str]:
        return [self.db.name]

    def get(self, name: str) -> SourceDatabase:
        if name != self.db.name:
            raise KeyError(name)
        return self.db


@pytest.fixture(scope="module")
def guard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LookupTools, list[str]]]:
    path = make_shop_db(tmp_path_factory.mktemp("guard") / "shop.db")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, secret TEXT)")
    db = SourceDatabase("shop", f"sqlite:///{path}")
    seen: list[str] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    settings = ServerSettings(lookup_tables=[f"shop.bikes:{','.join(OPEN)}"], lookup_row_cap=2)
    yield LookupTools(settings, OneSource(db), lambda source, table: table == "bikes"), seen
    db.close()


def valid(call: dict[str, Any]) -> bool:
    """The oracle: what the guard must accept (anything else it must refuse without a query)."""
    args = call.get("arguments")
    if set(call) != {"name", "arguments"} or not isinstance(args, dict) or call["name"] not in TOOLS:
        return False
    if not set(args) <= {"table", "where", "column", "limit"} or args.get("table") not in (
        "shop.bikes",
        "bikes",
    ):
        return False
    where, column = args.get("where", {}), args.get("column")
    if (
        not isinstance(where, dict)
        or any(k not in OPEN for k in where)
        or not all(map(ok_value, where.values()))
    ):
        return False
    wants_column = call["name"] in ("min", "max")
    return (column in OPEN) if wants_column else ("column" not in args)


def ok_value(value: object) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    return (
        value is None or isinstance(value, bool | float) or (isinstance(value, str) and "\x00" not in value)
    )


TOOLS = ("lookup", "count", "min", "max")
CALLS = st.fixed_dictionaries(
    {
        "name": st.sampled_from((*TOOLS, "drop", "")),
        "arguments": st.one_of(
            st.fixed_dictionaries(
                {"table": st.sampled_from(("shop.bikes", "bikes", "shop.users", "users", "nope", ""))},
                optional={
                    "where": st.dictionaries(st.sampled_from(COLUMNS), VALUES, max_size=3),
                    "column": st.sampled_from(COLUMNS),
                    "limit": st.integers(min_value=1, max_value=5),
                    "sql": st.just("DROP TABLE bikes"),
                },
            ),
            st.text(max_size=5),
        ),
    },
    optional={"extra": st.just(1)},
)


@hyp_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=CALLS)
def test_guard_refuses_every_malformed_or_off_list_call(
    guard: tuple[LookupTools, list[str]], call: dict[str, Any]
) -> None:
    tools, seen = guard
    seen.clear()
    outcome = tools.run("<tool_call>" + json.dumps(call) + "</tool_call>")
    assert outcome is not None
    assert outcome.ok == valid(call), outcome.error
    if not outcome.ok:
        assert not any("FROM bikes" in s or "FROM users" in s for s in seen), seen
    assert len(outcome.rows) <= 2


@hyp_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reply=st.text(max_size=60))
def test_arbitrary_replies_run_nothing_unless_a_valid_call(
    guard: tuple[LookupTools, list[str]], reply: str
) -> None:
    tools, seen = guard
    seen.clear()
    outcome = tools.run(reply)
    assert outcome is None or not outcome.ok
    assert not any("FROM bikes" in s for s in seen)
