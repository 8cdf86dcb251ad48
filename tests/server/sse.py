"""Reading a text/event-stream body in tests."""

from __future__ import annotations

import json
from collections.abc import Iterator


def sse_events(lines: Iterator[str]) -> list[tuple[str, dict]]:
    """(event, data) pairs of a text/event-stream, keep-alive comments skipped."""
    events, name, data = [], "message", []
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif not line and data:
            events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
    return events
