"""A small OpenAI-compatible model server for tests, served by real uvicorn on loopback.

`ScriptedBackend` holds what it answers and records what it is asked; `backend_app` serves it as
POST /v1/chat/completions (whole or streamed as server-sent events, with usage), GET /v1/models and vLLM's
POST /v1/load_lora_adapter. Switches: `raw` (bodies answered verbatim), `failures` (statuses answered, in
order, before any success, e.g. 429 with Retry-After), `delay_s` (wait before answering: timeouts),
`piece_delay_s` (wait between streamed pieces: cancellation), `dynamic_lora` (whether adapters can be
loaded at run time).

    backend = ScriptedBackend(replies=["Paris."])
    with serving(backend_app(backend)) as url:   # http://127.0.0.1:PORT
        ... OpenAIChatModel(url + "/v1", BASE_MODEL) ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests import live_uvicorn

BASE_MODEL = "Qwen/Qwen2.5-Coder-1.5B-Instruct"


@dataclass
class ScriptedBackend:
    """What the fake model server answers, and what it was asked."""

    replies: list[str] = field(default_factory=list)
    default: str = "The sources do not say."
    failures: list[tuple[int, str | None]] = field(default_factory=list)  # (status, Retry-After)
    raw: list[tuple[int, str]] = field(default_factory=list)  # (status, body) answered verbatim, first
    delay_s: float = 0.0
    piece_delay_s: float = 0.0
    dynamic_lora: bool = True
    adapters: dict[str, str] = field(default_factory=dict)  # served adapter name -> path
    requests: list[dict[str, Any]] = field(default_factory=list)  # every body, in order, with "path"
    headers: list[dict[str, str]] = field(default_factory=list)
    pieces_sent: int = 0
    stream_ended: threading.Event = field(default_factory=threading.Event)

    def reset(self) -> None:
        """Back to a fresh script (a server shared by several tests serves this same object)."""
        fresh = ScriptedBackend()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def next_reply(self) -> str:
        """The next scripted reply, then `default`."""
        return self.replies.pop(0) if self.replies else self.default

    def chat_bodies(self) -> list[dict[str, Any]]:
        """The chat completion requests received."""
        return [body for body in self.requests if body["path"] == "/v1/chat/completions"]


def _failure(backend: ScriptedBackend) -> Response | None:
    if backend.raw:
        status, text = backend.raw.pop(0)
        return Response(text, status, media_type="application/json")
    if not backend.failures:
        return None
    status, retry_after = backend.failures.pop(0)
    headers = {"Retry-After": retry_after} if retry_after else None
    message = "This model's maximum context length is 32 tokens" if status == 400 else f"scripted {status}"
    return JSONResponse({"error": {"message": message, "code": status}}, status, headers=headers)


async def _admit(backend: ScriptedBackend, request: Request) -> tuple[dict[str, Any], Response | None]:
    """Record the request, then answer a scripted failure or wait `delay_s`."""
    raw = await request.body()
    body = json.loads(raw) if raw else {}
    backend.requests.append({"path": request.url.path, **body})
    backend.headers.append(dict(request.headers))
    if (failed := _failure(backend)) is not None:
        return body, failed
    await asyncio.sleep(backend.delay_s)
    if await request.is_disconnected():  # a client that timed out: take nothing from the next test's script
        return body, Response(status_code=499)
    return body, None


def _usage(body: dict[str, Any], pieces: list[str]) -> dict[str, int]:
    prompt = sum(len(str(m["content"]).split()) for m in body["messages"])
    return {"prompt_tokens": prompt, "completion_tokens": len(pieces), "total_tokens": prompt + len(pieces)}


def _event(data: object) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


async def _events(backend: ScriptedBackend, body: dict[str, Any], pieces: list[str]) -> AsyncIterator[bytes]:
    try:
        for piece in pieces:
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            yield _event({**chunk, "model": body["model"], "usage": None})
            backend.pieces_sent += 1
            await asyncio.sleep(backend.piece_delay_s)
        yield _event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None})
        if (body.get("stream_options") or {}).get("include_usage"):
            yield _event({"choices": [], "usage": _usage(body, pieces)})
        yield b"data: [DONE]\n\n"
    finally:
        backend.stream_ended.set()  # also when the client went away (the generator is cancelled)


def backend_app(backend: ScriptedBackend) -> FastAPI:
    """The fake server's app: what vLLM's OpenAI API answers, as far as Almanac uses it."""
    app = FastAPI()

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Response:
        body, failed = await _admit(backend, request)
        if failed is not None:
            return failed
        if body["model"] not in (BASE_MODEL, *backend.adapters):
            missing = f"The model `{body['model']}` does not exist."
            return JSONResponse({"error": {"message": missing, "code": 404}}, 404)
        words = backend.next_reply().split(" ")
        pieces = [words[0], *(" " + word for word in words[1:])]
        if body.get("stream"):
            return StreamingResponse(_events(backend, body, pieces), media_type="text/event-stream")
        reply = {"role": "assistant", "content": "".join(pieces)}
        choice = {"index": 0, "message": reply, "finish_reason": "stop"}
        return JSONResponse({"model": body["model"], "choices": [choice], "usage": _usage(body, pieces)})

    @app.get("/v1/models", response_model=None)
    async def models(request: Request) -> Response | dict[str, Any]:
        _, failed = await _admit(backend, request)
        if failed is not None:
            return failed
        return {"object": "list", "data": [{"id": name} for name in (BASE_MODEL, *backend.adapters)]}

    @app.post("/v1/load_lora_adapter", response_model=None)
    async def load_lora_adapter(request: Request) -> Response:
        body, failed = await _admit(backend, request)
        if failed is not None:
            return failed
        if not backend.dynamic_lora:  # vLLM registers the route only with VLLM_ALLOW_RUNTIME_LORA_UPDATING
            return JSONResponse({"detail": "Not Found"}, 404)
        if body["lora_name"] in backend.adapters:
            message = f"The lora adapter '{body['lora_name']}' has already been loaded."
            return JSONResponse({"message": message, "code": 400}, 400)
        backend.adapters[body["lora_name"]] = body["lora_path"]
        return Response(f"Success: LoRA adapter '{body['lora_name']}' added successfully.")

    return app


def serving(app: FastAPI) -> contextlib.AbstractContextManager[str]:
    """Serve the model server app on loopback in a thread (no lifespan); yields its root URL."""
    return live_uvicorn.serving(app, lifespan="off")


@contextlib.contextmanager
def scripted_server() -> Iterator[tuple[str, ScriptedBackend]]:
    """A scripted model server on loopback: its API root (``.../v1``) and the script it serves."""
    backend = ScriptedBackend()
    with serving(backend_app(backend)) as url:
        yield url + "/v1", backend
