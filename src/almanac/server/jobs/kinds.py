"""What each job kind does with the indexer (folder, upload, database, delete, repair), and what its failure
names. ``repair`` is queued by the server itself when an index file fails verification: the writer rewrites
the collection's index from the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from almanac.core.catalog import Catalog
from almanac.core.errors import InputError
from almanac.core.source_db import SourceDatabase
from almanac.indexer.pipeline import Indexer
from almanac.indexer.report import IngestReport


class JobKinds:
    """Runs a job's spec through the indexer; the catalog resolves sources and document ids."""

    def __init__(self, catalog: Catalog, max_chars: int | None = None) -> None:
        self.catalog, self.max_chars = catalog, max_chars  # max_chars: text one file job may ingest

    def discard_refused(self, kind: str, spec: dict[str, Any]) -> None:
        """Remove an upload job's saved files that no document came of (refused, failed or cancelled), so
        refused uploads do not pile up unrecorded in the uploads folder."""
        if kind != "upload":
            return
        row = self.catalog.collection(spec["collection"])
        states = self.catalog.document_states(row.id, sources=spec["paths"]) if row is not None else {}
        for name in spec["paths"]:
            if name not in states:
                Path(name).unlink(missing_ok=True)

    def execute(self, kind: str, spec: dict[str, Any], indexer: Indexer) -> dict[str, Any]:
        """Run one job of `kind` through `indexer`; returns its report as JSON."""
        collection = spec["collection"]
        indexer.use_engine(spec.get("engine", "local"))  # 'ray': ALMANAC_INGEST__RAY_ADDRESS or local
        if kind == "folder":
            return indexer.ingest_paths([Path(spec["path"])], collection, max_chars=self.max_chars).as_json()
        if kind == "upload":
            paths = [Path(p) for p in spec["paths"]]
            result = indexer.ingest_paths(paths, collection, max_chars=self.max_chars).as_json()
            return result | {"documents": self._document_ids(paths, collection)}
        if kind == "database":
            return self._ingest_database(spec, indexer).as_json()
        if kind == "repair":
            return indexer.compact(collection).as_json()
        if kind == "delete":
            report = indexer.delete(spec["sources"], collection)
            for name in spec.get("files", []):
                Path(name).unlink(missing_ok=True)
            return report.as_json()
        raise InputError(f"unknown job kind {kind!r}")

    def _ingest_database(self, spec: dict[str, Any], indexer: Indexer) -> IngestReport:
        name = spec["source"]
        url = self.catalog.source_urls().get(name)
        if url is None:
            raise InputError(f"source {name!r} is no longer registered; submit the job with its URL")
        db = SourceDatabase(name, url)
        try:
            return indexer.ingest_tables(db, spec["tables"], spec["collection"])
        finally:
            db.close()

    def _document_ids(self, paths: list[Path], collection: str) -> list[dict[str, Any]]:
        row = self.catalog.require_collection(collection)
        states = self.catalog.document_states(row.id)
        found = ((str(p.resolve()), states.get(str(p.resolve()))) for p in paths)
        return [{"id": state.id, "source": source} for source, state in found if state is not None]


def job_target(kind: str, spec: dict[str, Any]) -> str:
    """What a whole-job failure is about, for its error line."""
    if kind == "folder":
        return str(spec.get("path"))
    if kind == "database":
        return str(spec.get("source"))
    return str(spec.get("collection"))
