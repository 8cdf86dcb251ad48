"""Readiness: the server is ready once its models are in memory and the default collection's snapshot is
loaded (an empty ALMANAC_HOME, with no such collection yet, is ready: there is nothing to load, and uploads
must be accepted). The warm-up (`Services.warm_up`) runs in a thread started by the app's lifespan, so
/healthz answers at once.

    >>> readiness = Readiness()
    >>> readiness.mark_ready("models loaded")
    >>> readiness.as_json()
    {'status': 'ready', 'detail': 'models loaded'}
"""

from __future__ import annotations

import threading


class Readiness:
    """loading -> ready, or loading -> failed (with the reason)."""

    def __init__(self) -> None:
        self.state = "loading"
        self.detail = "loading models and the index"
        self._done = threading.Event()

    @property
    def ready(self) -> bool:
        """Whether the server can answer."""
        return self.state == "ready"

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the warm-up ends (ready or failed); True when it ended."""
        return self._done.wait(timeout_s)

    def as_json(self) -> dict[str, str]:
        """The /readyz body."""
        return {"status": self.state, "detail": self.detail}

    def mark_ready(self, detail: str) -> None:
        """Loading finished: the server can answer."""
        self.state, self.detail = "ready", detail
        self._done.set()

    def mark_failed(self, reason: str) -> None:
        """Loading failed: /readyz says why."""
        self.state, self.detail = "failed", reason
        self._done.set()
