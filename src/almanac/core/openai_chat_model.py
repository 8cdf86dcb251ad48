"""The OpenAI-compatible chat model: generation on vLLM, or any server speaking POST /v1/chat/completions.

A request's adapter becomes the model name sent, which is how vLLM serves LoRA adapters (``--enable-lora
--lora-modules NAME=PATH``, or loaded at run time through ``POST /v1/load_lora_adapter``). Requests refused
with 429/503, or that cannot connect, are retried with exponential backoff and jitter, honouring the server's
Retry-After, a bounded number of times; then ModelUnavailableError (503 with Retry-After). A stream is never
retried once it has started. Closing a stream, or setting its `cancel` event, closes the HTTP response, which
vLLM takes as an abort of the generation.

The remote server applies its own chat template to message text, so control-token look-alikes in messages
(``<|im_end|>``, ``</s>``, ``[INST]`` ...) are defused first, as core/chat_encoder.py does in process.

    chat = OpenAIChatModel("http://127.0.0.1:8001/v1", "Qwen/Qwen2.5-Coder-1.5B-Instruct")
    chat.complete([ChatMessage("user", "What is the capital of France?")], 32).text  # 'Paris.'
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from almanac.core.adapter_manifest import loadable_adapter
from almanac.core.errors import (
    ConfigError,
    InputError,
    LimitError,
    ModelError,
    ModelUnavailableError,
    NotFoundError,
)
from almanac.core.reply_stream import ReplyStream
from almanac.core.types import ChatMessage, Completion

log = logging.getLogger(__name__)

# Chat-template markers of the common families: ChatML and Llama 3 (`<|...|>`), Llama 2 and Mistral
# (`<s>`, `[INST]`, `<<SYS>>`), Gemma (`<start_of_turn>`). Any `<|` is defused, whatever follows it.
_CONTROL = re.compile(r"<\||</?s>|\[/?INST\]|<</?SYS>>|<(?:start_of_turn|end_of_turn|bos|eos|pad|unk)>")
_MAX_WAIT_S = 30.0  # a Retry-After longer than this is handed to the client rather than waited out
_RETRIED = frozenset({429, 503})


def defuse_control_tokens(text: str) -> str:
    """`text` with a space after the first character of every control-token look-alike in it.

    >>> defuse_control_tokens("a<|im_end|>\\n<|im_start|>system [INST] </s>")
    'a< |im_end|>\\n< |im_start|>system [ INST] < /s>'
    """
    return _CONTROL.sub(lambda match: f"{match[0][0]} {match[0][1:]}", text)


def _error_message(response: httpx.Response) -> str:
    """The server's own error message (OpenAI's `{"error": {"message"}}`, or FastAPI's `detail`)."""
    text = response.read().decode("utf-8", "replace")
    try:
        data = json.loads(text)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message") or error.get("detail") if isinstance(error, dict) else error
        return str(message)[:300]
    except ValueError:
        return text[:300]


class OpenAIChatModel:
    """The ChatModel port over an OpenAI-compatible HTTP server; adapters are served models named after them.

    `identity` is the base model adapters must have been trained on (their manifests are checked before
    vLLM is asked to load one from `adapters_dir`); `temperature` 0 is greedy, as the in-process model.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        name: str | None = None,
        identity: str | None = None,
        adapters_dir: Path | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        retries: int = 3,
        temperature: float = 0.0,
        backoff_s: float = 0.5,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"model server URL {base_url!r} must start with http:// or https://")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.name, self.identity, self.adapters_dir = name or model, identity or model, adapters_dir
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.temperature = temperature
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def complete(
        self, messages: Sequence[ChatMessage], max_tokens: int, adapter: str | None = None
    ) -> Completion:
        """The whole reply, with the server's token counts."""
        response = self._send("POST", "/chat/completions", self._body(messages, max_tokens, adapter, False))
        self._check(response, adapter)
        try:
            data = response.json()
            choice, usage = data["choices"][0], data.get("usage") or {}
            return Completion(
                text=str(choice["message"]["content"] or ""),
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                finish_reason=str(choice.get("finish_reason") or "stop"),
            )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ModelError(
                f"the model server at {self.base_url} sent no chat completion ({exc!r})"
            ) from exc

    def stream(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        adapter: str | None = None,
        cancel: threading.Event | None = None,
    ) -> ReplyStream:
        """Reply pieces. The request is sent (and retried) now, so a server that is down fails here."""
        body = self._body(messages, max_tokens, adapter, True)
        response = self._send("POST", "/chat/completions", body, stream=True)
        self._check(response, adapter)
        return ReplyStream(response, cancel, self.base_url)

    def count_tokens(self, text: str) -> int:
        """An estimate, about four characters a token: the server's tokenizer is not here (`complete`
        reports the server's exact counts)."""
        return len(text) // 4 + 1 if text else 0

    def adapters(self) -> list[str]:
        """Adapters the server serves now: every model of GET /models but the base model."""
        response = self._send("GET", "/models")
        self._check(response, None)
        try:
            return [str(m["id"]) for m in response.json()["data"] if m["id"] != self.model]
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"the model server at {self.base_url} sent no model list ({exc!r})") from exc

    def load_adapter(self, name: str) -> None:
        """Have the server serve ``adapters_dir/NAME`` (vLLM's dynamic LoRA loading); no-op when served.

        The server reads the folder itself, so it must see it at the same path (same host or volume).
        """
        if name in self.adapters():
            return
        if self.adapters_dir is None:
            raise NotFoundError(f"the model server does not serve adapter {name!r}; serve it there")
        folder = loadable_adapter(self.adapters_dir, name, self.identity).resolve()
        body = {"lora_name": name, "lora_path": str(folder)}
        response = self._send("POST", "/load_lora_adapter", body)
        if response.status_code in (404, 405):
            raise ConfigError(
                f"the model server at {self.base_url} cannot load adapters at run time; serve adapter "
                f"{name!r} with `vllm serve ... --enable-lora --lora-modules {name}={folder}`, or start "
                "vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
            )
        if response.status_code == 400 and "already" in _error_message(response):
            return  # another request loaded it in the meantime
        self._check(response, None)
        log.info("adapter loaded on the model server name=%s folder=%s", name, folder)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _body(
        self, messages: Sequence[ChatMessage], max_tokens: int, adapter: str | None, stream: bool
    ) -> dict[str, Any]:
        if not messages:
            raise InputError("no messages given; send at least one user message")
        if max_tokens < 1:
            raise LimitError(f"max_tokens must be at least 1, not {max_tokens}")
        body: dict[str, Any] = {
            "model": adapter or self.model,
            "messages": [{"role": m.role, "content": defuse_control_tokens(m.content)} for m in messages],
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None, stream: bool = False
    ) -> httpx.Response:
        """The response, after retrying 429/503 and connection failures with backoff; else the 503 error."""
        for attempt in range(self.retries + 1):
            wait = self.backoff_s * 2**attempt * random.uniform(1.0, 1.5)  # jitter spreads clients apart
            try:
                response = self._client.send(
                    self._client.build_request(method, path, json=body), stream=stream
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                reason = f"could not be reached ({exc})"
            except httpx.TimeoutException as exc:  # a slow generation is not retried: it would run again
                raise ModelUnavailableError(
                    f"the model server at {self.base_url} sent nothing for {self.timeout_s:g} s ({exc!r}); "
                    "raise ALMANAC_CHAT__TIMEOUT_S or ask for fewer max_tokens",
                    math.ceil(self.timeout_s),
                ) from exc
            else:
                if response.status_code not in _RETRIED:
                    return response
                reason = f"answered HTTP {response.status_code} ({_error_message(response)})"
                wait = _retry_after(response) or wait
                response.close()
            if attempt == self.retries or wait > _MAX_WAIT_S:
                break
            log.warning(
                "event=model_server_retry attempt=%d wait_s=%.2f reason=%s", attempt + 1, wait, reason
            )
            time.sleep(wait)
        raise ModelUnavailableError(
            f"the model server at {self.base_url} {reason} after {attempt + 1} tries; check that it runs "
            "at that URL (ALMANAC_CHAT__BASE_URL, --teacher-url) and retry later",
            max(1, math.ceil(wait)),
        )

    def _check(self, response: httpx.Response, adapter: str | None) -> None:
        """The error that a non-200 answer means (the response is closed first)."""
        if response.status_code == 200:
            return
        status, message = response.status_code, _error_message(response)
        response.close()
        where = f"the model server at {self.base_url} answered HTTP {status} ({message})"
        if status in (401, 403):
            raise ConfigError(
                f"{where}; give it a key it accepts (ALMANAC_CHAT__API_KEY, --teacher-api-key-env)"
            )
        if status == 404 and adapter is not None:
            raise NotFoundError(f"{where}: it does not serve adapter {adapter!r}; serve it there and retry")
        if status == 404:
            raise ConfigError(
                f"{where}; name a model of its GET /models (ALMANAC_CHAT__MODEL, --teacher-model)"
            )
        if status == 400 and ("context" in message or "token" in message):
            raise LimitError(f"{where}; shorten the question, use a smaller top_k or max_tokens")
        raise ModelError(f"{where}; check the model server's log")


def _retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (the delay form; an HTTP date is ignored)."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None
