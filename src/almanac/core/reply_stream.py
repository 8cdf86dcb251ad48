"""The reply stream: the text pieces of a streamed OpenAI chat completion, read from server-sent events.

for piece in ReplyStream(response, cancel, "http://127.0.0.1:8001/v1"):  # an open httpx response
    print(piece, end="")
"""

from __future__ import annotations

import json
import threading
from collections.abc import Generator, Iterator

import httpx

from almanac.core.errors import ModelError, ModelUnavailableError


class ReplyStream(Iterator[str]):
    """The text pieces of a streamed chat completion (server-sent events). Stops at `[DONE]`, when `cancel`
    is set (checked at each event, so within a token of it) or when closed; every way out closes the HTTP
    response. `usage` holds the server's token counts once the stream is read to its end."""

    def __init__(self, response: httpx.Response, cancel: threading.Event | None, where: str) -> None:
        self._response, self._cancel, self._where = response, cancel, where
        self.usage: dict[str, int] = {}
        self._pieces = self._read()

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        """Stop reading and close the response (the server aborts the generation)."""
        self._pieces.close()
        self._response.close()

    def _read(self) -> Generator[str, None, None]:
        try:
            for line in self._response.iter_lines():
                if self._cancel is not None and self._cancel.is_set():
                    return
                if not line.startswith("data:"):
                    continue  # blank separators, comments and `event:` lines
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                yield from self._pieces_of(data)
        except httpx.TimeoutException as exc:
            raise ModelUnavailableError(
                f"the model server at {self._where} stopped sending ({exc!r}); retry, or raise "
                "ALMANAC_CHAT__TIMEOUT_S"
            ) from exc
        except httpx.TransportError as exc:
            raise ModelError(f"the model server at {self._where} broke off the reply ({exc}); retry") from exc
        finally:
            self._response.close()

    def _pieces_of(self, data: str) -> Iterator[str]:
        try:
            chunk = json.loads(data)
            if "error" in chunk:
                raise ModelError(f"the model server at {self._where} failed mid-reply: {chunk['error']}")
            if usage := chunk.get("usage"):  # the last event, asked for with stream_options.include_usage
                self.usage = {k: v for k, v in usage.items() if isinstance(v, int)}
            pieces = [(choice.get("delta") or {}).get("content") for choice in chunk.get("choices") or []]
        except (ValueError, AttributeError, TypeError) as exc:
            raise ModelError(f"the model server at {self._where} sent a bad event {data[:100]!r}") from exc
        yield from (piece for piece in pieces if isinstance(piece, str) and piece)
