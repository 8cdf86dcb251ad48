"""Log records as JSON lines (`almanac --log-format json`), each with the request id when inside a request.

    {"time": "2026-11-27T06:50:01.123Z", "level": "INFO", "logger": "almanac.audit",
     "message": "event=key_created ...", "request_id": "3f2c..."}

The request id lives in a context variable set by the server's request-id middleware; `RequestIdFilter`
copies it onto every record (as `request_id`, "-" outside a request).
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

request_id_var: ContextVar[str | None] = ContextVar("almanac_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being handled in this context, or None outside a request."""
    return request_id_var.get()


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` (the current request's id, or "-") to every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate, never drop."""
        record.request_id = request_id_var.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, request_id when known,
    exc_info as text when present.

    >>> record = logging.LogRecord("almanac.audit", logging.INFO, __file__, 1, "event=%s", ("x",), None)
    >>> sorted(json.loads(JsonFormatter().format(record)))
    ['level', 'logger', 'message', 'time']
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, str] = {
            "time": stamp.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id and request_id != "-":
            line["request_id"] = request_id
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: int, log_format: str) -> None:
    """Root logging for a command: `text` (time level logger message) or `json` lines. Like
    `logging.basicConfig`, it leaves a root logger that already has handlers alone (pytest's capture)."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("almanac.audit").setLevel(logging.INFO)  # admin actions are logged at any -v
