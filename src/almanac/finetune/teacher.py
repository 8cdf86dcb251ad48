"""Teachers: the chat model that writes questions. The embedded model, a local model folder, or any
OpenAI-compatible endpoint (vLLM, a hosted model) through `OpenAITeacher`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from almanac.core.errors import ConfigError, ModelError
from almanac.core.ports import ChatModel
from almanac.core.settings import Settings
from almanac.core.types import ChatMessage, Completion

log = logging.getLogger(__name__)


class OpenAITeacher:
    """ChatModel over POST {base_url}/chat/completions of an OpenAI-compatible server.

    `transport` lets tests answer with an `httpx.MockTransport`; transport errors are retried once.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        temperature: float = 0.7,
        timeout_s: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"teacher URL {base_url!r} must start with http:// or https://")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport
        )
        self.name = model
        self.temperature = temperature

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        for attempt in (1, 2):
            try:
                return self._client.post("/chat/completions", json=body)
            except httpx.TransportError as exc:
                if attempt == 2:
                    raise ModelError(
                        f"cannot reach the teacher at {self._client.base_url} ({exc}); "
                        "check --teacher-url and that the server is running"
                    ) from exc
                log.warning("teacher request failed, retrying error=%r", exc)
        raise AssertionError("unreachable")

    def complete(
        self, messages: Sequence[ChatMessage], max_tokens: int, adapter: str | None = None
    ) -> Completion:
        """One chat completion; `adapter` is ignored (the endpoint serves one model)."""
        body = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "temperature": self.temperature,
        }
        response = self._post(body)
        if response.status_code != 200:
            raise ModelError(
                f"teacher at {self._client.base_url} answered HTTP {response.status_code}: "
                f"{response.text[:200]!r}; check --teacher-model and --teacher-api-key"
            )
        try:
            data = response.json()
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            return Completion(
                text=str(choice["message"]["content"] or ""),
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                finish_reason=str(choice.get("finish_reason") or "stop"),
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelError(f"teacher reply is not an OpenAI chat completion ({exc!r})") from exc

    def stream(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        adapter: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """The whole completion as one piece (generation needs no streaming)."""
        yield self.complete(messages, max_tokens, adapter).text

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def build_teacher(
    settings: Settings, model: str | None = None, url: str | None = None, api_key: str | None = None
) -> ChatModel:
    """The teacher the flags name: an endpoint (`url`), a local model (`model`), else the embedded model."""
    if url:
        return OpenAITeacher(url, model or "default", api_key)
    from almanac.core.chat_model import TransformersChatModel, build_chat_model
    from almanac.core.model_cache import model_identity, prepare_model_dir

    if model is None:
        return build_chat_model(settings)
    folder = prepare_model_dir(model, settings.models_dir)
    return TransformersChatModel(folder, identity=model_identity(model), device=settings.chat.device)
