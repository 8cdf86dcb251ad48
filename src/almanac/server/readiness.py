"""Readiness: the server is ready once its models are in memory and the default collection's snapshot is
loaded (an empty ALMANAC_HOME, with no such collection yet, is ready: there is nothing to load, and uploads
must be accepted). The warm-up runs in a thread started by the app's lifespan, so /healthz answers at once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from almanac.core.errors import AlmanacError

if TYPE_CHECKING:
    from almanac.server.services import Services

log = logging.getLogger(__name__)


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

    def warm_up(self, services: Services) -> None:
        """Load the chat model, run the embedder once, load the default collection's snapshot."""
        started = time.perf_counter()
        try:
            services.chat.load()
            services.embedder.embed(["warm-up"])
            name = services.settings.default_collection
            if services.catalog.collection(name) is not None:
                services.retriever.warm(name)
                self.detail = (
                    f"models loaded; collection {name!r} at version {services.retriever.version(name)}"
                )
            else:
                self.detail = f"models loaded; collection {name!r} is empty (ingest documents to answer)"
            self.state = "ready"
            log.info("event=ready seconds=%.2f detail=%s", time.perf_counter() - started, self.detail)
        except (AlmanacError, OSError, RuntimeError) as exc:
            self.state, self.detail = "failed", f"warm-up failed: {exc}"
            log.error("event=warm_up_failed reason=%s", exc)
        finally:
            self._done.set()

    def start(self, services: Services) -> threading.Thread:
        """Warm up in a daemon thread."""
        thread = threading.Thread(target=self.warm_up, args=(services,), name="almanac-warm-up", daemon=True)
        thread.start()
        return thread
