"""The embedder for each collection's precision: queries over a collection are embedded as its chunks were.

With ``ALMANAC_EMBEDDING__PRECISION=auto`` a collection keeps the precision it was built with: one built in
fp32 before int8 became the CPU default is still searched (and extended) in fp32, and a new one gets the
default. An explicit precision is a promise instead: a collection of another precision is an
IndexMismatchError that says which setting serves it.

    >>> from almanac.core.embedder import HashingEmbedder
    >>> from almanac.core.settings import EmbeddingSettings
    >>> pool = PrecisionEmbedders(EmbeddingSettings(model="hashing"), None, HashingEmbedder())
    >>> pool.for_collection("docs", "fp32").precision
    'fp32'
"""

from __future__ import annotations

import threading
from pathlib import Path

from almanac.core.embedder import build_embedder
from almanac.core.ports import Embedder
from almanac.core.precision import require_precision
from almanac.core.settings import EmbeddingSettings


class PrecisionEmbedders:
    """The configured embedder, plus one per other precision that 'auto' meets, each built on first use."""

    def __init__(self, settings: EmbeddingSettings, models_dir: Path | None, configured: Embedder) -> None:
        self.settings, self.models_dir, self.configured = settings, models_dir, configured
        self._others: dict[str, Embedder] = {}
        self._lock = threading.Lock()

    def for_collection(self, collection: str, stored: str) -> Embedder:
        """The embedder for a collection whose vectors are `stored` precision (see the module docstring)."""
        if stored == self.configured.precision:
            return self.configured
        if self.settings.precision != "auto":
            require_precision(collection, stored, self.configured.precision)
        with self._lock:
            if stored not in self._others:
                self._others[stored] = build_embedder(self.settings, self.models_dir, stored)
            return self._others[stored]
