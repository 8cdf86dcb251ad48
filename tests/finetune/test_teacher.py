"""OpenAITeacher against an httpx MockTransport: request shape, reply parsing, errors, retry."""

from __future__ import annotations

import json

import httpx
import pytest

from almanac.core.errors import ConfigError, ModelError
from almanac.core.types import ChatMessage
from almanac.finetune.question_writer import QuestionWriter
from almanac.finetune.teacher import OpenAITeacher

ITEM = {
    "question": "When does the ferry leave?",
    "answer": "7:40",
    "rationale": "It says so.",
    "wrong_answer": "9",
}


def completion(content: str) -> dict:
    return {
        "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7},
    }


def test_posts_a_chat_completion_and_reads_the_reply():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=completion("hello"))

    teacher = OpenAITeacher(
        "http://vllm:8001/v1/", "qwen", api_key="sk-test", transport=httpx.MockTransport(handler)
    )
    reply = teacher.complete([ChatMessage("system", "s"), ChatMessage("user", "u")], 64)
    assert (reply.text, reply.prompt_tokens, reply.completion_tokens) == ("hello", 11, 7)
    request = seen[0]
    assert request.method == "POST" and str(request.url) == "http://vllm:8001/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    body = json.loads(request.content)
    assert body["model"] == "qwen" and body["max_tokens"] == 64
    assert body["messages"] == [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]


def test_question_writer_parses_what_the_endpoint_returns():
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=completion(json.dumps([ITEM]))))
    drafts, unparsable = QuestionWriter(OpenAITeacher("http://t/v1", "m", transport=transport)).write("p", 3)
    assert unparsable == 0 and drafts[0].answer == "7:40"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(401, text="bad key"), "HTTP 401"),
        (httpx.Response(200, text="<html>"), "not an OpenAI chat completion"),
        (httpx.Response(200, json={"choices": []}), "not an OpenAI chat completion"),
    ],
)
def test_bad_replies_are_model_errors(response, message):
    teacher = OpenAITeacher("http://t/v1", "m", transport=httpx.MockTransport(lambda r: response))
    with pytest.raises(ModelError, match=message):
        teacher.complete([ChatMessage("user", "u")], 8)


def test_transport_errors_are_retried_once_then_reported():
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=completion("ok"))

    assert (
        OpenAITeacher("http://t/v1", "m", transport=httpx.MockTransport(flaky)).complete([], 8).text == "ok"
    )

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ModelError, match="cannot reach the teacher"):
        OpenAITeacher("http://t/v1", "m", transport=httpx.MockTransport(down)).complete([], 8)
    # a dead endpoint during generation is one unparsable passage, not a crash
    writer = QuestionWriter(OpenAITeacher("http://t/v1", "m", transport=httpx.MockTransport(down)))
    assert writer.write("passage", 2) == ([], 1)


def test_url_must_be_http():
    with pytest.raises(ConfigError, match="http"):
        OpenAITeacher("ftp://t", "m")
