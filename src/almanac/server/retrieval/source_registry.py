"""Registered source databases by name, opened lazily, and the live re-read of row hits.

Row hits carry their address (``db://SOURCE/TABLE/pk=..``), never a connection URL: the URL stays in the
catalog and in this registry. Before a row enters a prompt it is read again by primary key, so an answer
reflects the database now: a changed row is shown as it is now (rendered exactly as the indexer renders it),
a deleted row is dropped. Every re-read runs with the same statement timeout as /v1/lookup
(``server.lookup_timeout_ms``) and a connect timeout, so a slow or unreachable source database never hangs
an answer: its row hits are dropped (their indexed text may be stale) and a warning saying so is appended
to the caller's `warnings` list, which /v1/query and /v1/search return.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import replace

from almanac.core.catalog import Catalog
from almanac.core.errors import InputError, NotFoundError, SourceError
from almanac.core.row_text import render_row, row_key_from_uri
from almanac.core.source_db import SourceDatabase
from almanac.core.types import Hit, RowKey

log = logging.getLogger(__name__)


class SourceRegistry:
    """name -> SourceDatabase, from the catalog's registered sources (new ones are picked up on demand)."""

    def __init__(
        self, catalog: Catalog, connect_timeout_s: float = 5.0, timeout_ms: int | None = 2000
    ) -> None:
        self.catalog, self.connect_timeout_s, self.timeout_ms = catalog, connect_timeout_s, timeout_ms
        self._open: dict[str, SourceDatabase] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Registered source names, sorted."""
        return sorted(self.catalog.source_urls())

    def get(self, name: str) -> SourceDatabase:
        """The open source database registered under `name`."""
        with self._lock:
            db = self._open.get(name)
            if db is not None:
                return db
            url = self.catalog.source_urls().get(name)
            if url is None:
                raise NotFoundError(
                    f"no source database {name!r}; register it with `almanac ingest-db URL --name {name}` "
                    f"(sources: {', '.join(self.names()) or 'none'})"
                )
            db = self._open[name] = SourceDatabase(name, url, self.connect_timeout_s)
            return db

    def refresh(self, hits: Sequence[Hit], warnings: list[str] | None = None) -> list[Hit]:
        """Hits with row hits re-read live: changed rows re-rendered, deleted ones dropped, one per row.

        Rows of a source that cannot be read in time are dropped; one line per such source goes to `warnings`.
        """
        keys: dict[int, RowKey] = {}
        for hit in hits:
            if hit.kind == "row":
                try:
                    keys[hit.chunk_id] = row_key_from_uri(hit.source)
                except InputError:
                    log.warning("event=row_address_unparsable source=%s", hit.source)
        live = self._read(list(dict.fromkeys(keys.values())), warnings if warnings is not None else [])
        refreshed: list[Hit] = []
        seen_rows: set[str] = set()
        for hit in hits:
            key = keys.get(hit.chunk_id)
            if key is None:
                refreshed.append(hit)
                continue
            row = live.get(key)
            if hit.source in seen_rows or row is None:
                continue  # a second chunk of the same row, a deleted row, or one whose source failed
            seen_rows.add(hit.source)
            refreshed.append(replace(hit, text=render_row(key.table, row)))
        return refreshed

    def _read(self, keys: list[RowKey], warnings: list[str]) -> dict[RowKey, dict[str, object] | None]:
        """Live rows by key (None: deleted); a key missing from the result could not be read."""
        found: dict[RowKey, dict[str, object] | None] = {}
        by_source: dict[str, list[RowKey]] = {}
        for key in keys:
            by_source.setdefault(key.source, []).append(key)
        for source, group in by_source.items():
            try:
                found.update(self.get(source).read_rows(group, self.timeout_ms))
            except (SourceError, NotFoundError) as exc:
                log.warning("event=row_reread_failed source=%s rows=%d reason=%s", source, len(group), exc)
                warnings.append(  # the reason (host, other source names) stays in the server log
                    f"{len(group)} row source(s) of source database {source!r} left out: it could not be "
                    "read in time (down, missing or slow); the server log says why"
                )
        return found

    def close(self) -> None:
        """Dispose of every open connection pool."""
        with self._lock:
            for db in self._open.values():
                db.close()
            self._open.clear()
