"""Registered source databases by name, opened lazily, and the live re-read of row hits.

Row hits carry their address (``db://SOURCE/TABLE/pk=..``), never a connection URL: the URL stays in the
catalog and in this registry. Before a row enters a prompt it is read again by primary key, so an answer
reflects the database now: a changed row is shown as it is now (rendered exactly as the indexer renders it),
a deleted row is dropped. When a source cannot be reached, its rows keep their indexed text (logged as
stale) rather than failing the whole answer.
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

    def __init__(self, catalog: Catalog, connect_timeout_s: float = 5.0) -> None:
        self.catalog, self.connect_timeout_s = catalog, connect_timeout_s
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

    def refresh(self, hits: Sequence[Hit]) -> list[Hit]:
        """Hits with row hits re-read live: changed rows re-rendered, deleted ones dropped, one per row."""
        keys: dict[int, RowKey] = {}
        for hit in hits:
            if hit.kind == "row":
                try:
                    keys[hit.chunk_id] = row_key_from_uri(hit.source)
                except InputError:
                    log.warning("event=row_address_unparsable source=%s", hit.source)
        live = self._read(list(dict.fromkeys(keys.values())))
        refreshed: list[Hit] = []
        seen_rows: set[str] = set()
        for hit in hits:
            key = keys.get(hit.chunk_id)
            if key is None:
                refreshed.append(hit)
                continue
            if hit.source in seen_rows or (key in live and live[key] is None):
                continue  # a second chunk of the same row, or a row deleted since indexing
            seen_rows.add(hit.source)
            row = live.get(key)
            refreshed.append(replace(hit, text=render_row(key.table, row)) if row is not None else hit)
        return refreshed

    def _read(self, keys: list[RowKey]) -> dict[RowKey, dict[str, object] | None]:
        """Live rows by key; a key missing from the result could not be read (source unreachable)."""
        found: dict[RowKey, dict[str, object] | None] = {}
        by_source: dict[str, list[RowKey]] = {}
        for key in keys:
            by_source.setdefault(key.source, []).append(key)
        for source, group in by_source.items():
            try:
                found.update(self.get(source).read_rows(group))
            except (SourceError, NotFoundError) as exc:
                log.warning("event=row_reread_failed source=%s rows=%d reason=%s", source, len(group), exc)
        return found

    def close(self) -> None:
        """Dispose of every open connection pool."""
        with self._lock:
            for db in self._open.values():
                db.close()
            self._open.clear()
