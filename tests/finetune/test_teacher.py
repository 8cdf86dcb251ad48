"""The teacher over an OpenAI-compatible endpoint (`--teacher-url`): a real HTTP server on loopback answers
the request shape, the reply parsing, errors and retries; `build_teacher` picks the endpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from almanac.core.errors import ConfigError, ModelError
from almanac.core.openai_chat_model import OpenAIChatModel
from almanac.core.settings import Settings
from almanac.core.types import ChatMessage
from almanac.finetune.question_writer import QuestionWriter
from almanac.finetune.teacher import build_teacher
from tests.core.openai_backend import BASE_MODEL, ScriptedBackend, scripted_server
from tests.live_uvicorn import free_port

ITEM = {
    "question": "When does the ferry leave?",
    "answer": "7:40",
    "rationale": "It says so.",
    "wrong_answer": "9",
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[tuple[str, ScriptedBackend]]:
    """A model server for the module: its API root and its script."""
    with scripted_server() as pair:
        yield pair


@pytest.fixture
def backend(endpoint: tuple[str, ScriptedBackend]) -> ScriptedBackend:
    """The endpoint's script, fresh for each test."""
    endpoint[1].reset()
    return endpoint[1]


def teacher(endpoint: tuple[str, ScriptedBackend], tmp_path: Path, url: str | None = None) -> OpenAIChatModel:
    """The teacher `almanac finetune generate --teacher-url URL` builds, with quick retries."""
    built = build_teacher(Settings(home=tmp_path), BASE_MODEL, url or endpoint[0] + "/", "sk-test")
    assert isinstance(built, OpenAIChatModel)
    built.backoff_s = 0.01
    return built


def test_posts_a_chat_completion_and_reads_the_reply(endpoint, backend: ScriptedBackend, tmp_path: Path):
    backend.replies.append("hello there")
    reply = teacher(endpoint, tmp_path).complete([ChatMessage("system", "s"), ChatMessage("user", "u")], 64)
    assert (reply.text, reply.prompt_tokens, reply.completion_tokens) == ("hello there", 2, 2)
    (body,) = backend.chat_bodies()
    assert body["model"] == BASE_MODEL and body["max_tokens"] == 64
    assert body["temperature"] == 0.7  # some variety across the questions about one passage
    assert body["messages"] == [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert backend.headers[-1]["authorization"] == "Bearer sk-test"


def test_question_writer_parses_what_the_endpoint_returns(endpoint, backend: ScriptedBackend, tmp_path: Path):
    backend.replies.append(json.dumps([ITEM]))
    drafts, unparsable = QuestionWriter(teacher(endpoint, tmp_path)).write("p", 3)
    assert unparsable == 0 and drafts[0].answer == "7:40"


@pytest.mark.parametrize(
    ("status", "text", "error", "message"),
    [
        (401, '{"error": {"message": "bad key"}}', ConfigError, "HTTP 401 .*bad key.*--teacher-api-key-env"),
        (200, "<html>", ModelError, "sent no chat completion"),
        (200, '{"choices": []}', ModelError, "sent no chat completion"),
    ],
)
def test_bad_replies_are_clear_errors(endpoint, backend, tmp_path: Path, status, text, error, message):
    backend.raw.append((status, text))
    with pytest.raises(error, match=message):
        teacher(endpoint, tmp_path).complete([ChatMessage("user", "u")], 8)


def test_a_busy_endpoint_is_retried_and_a_dead_one_reported(endpoint, backend, tmp_path: Path):
    backend.failures.append((503, None))
    assert teacher(endpoint, tmp_path).complete([ChatMessage("user", "u")], 8).text == backend.default
    assert len(backend.chat_bodies()) == 2
    dead = teacher(endpoint, tmp_path, url=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(ModelError, match="could not be reached"):
        dead.complete([ChatMessage("user", "u")], 8)
    # a dead endpoint during generation is one unparsable passage, not a crash
    assert QuestionWriter(dead).write("passage", 2) == ([], 1)


def test_url_must_be_http(tmp_path: Path):
    with pytest.raises(ConfigError, match="http"):
        build_teacher(Settings(home=tmp_path), "m", "ftp://t", None)
