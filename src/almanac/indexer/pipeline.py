"""The indexing pipeline shared by the CLI and the server's jobs.

files or table rows -> read -> chunk -> skip what is unchanged -> embed in batches -> catalog + index

Unchanged content costs a stat (same size and mtime) or a hash (same bytes); nothing is re-embedded or
republished for it. Each bad input becomes one line in the report; the rest of the batch is indexed.
With `remote` set (indexer.ray_engine), changed items are parsed, chunked and embedded elsewhere and come
back here, to the one writer, which commits them as it commits its own.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from almanac.core.catalog import Catalog, DocState
from almanac.core.catalog_schema import CollectionRow
from almanac.core.errors import AlmanacError, FileTooLargeError
from almanac.core.index_store import IndexStore
from almanac.core.ports import Embedder
from almanac.core.precision_embedders import PrecisionEmbedders
from almanac.core.row_text import render_row
from almanac.core.search_filter import row_fields
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase
from almanac.core.types import Section
from almanac.indexer.batch_writer import BatchWriter, PendingDocument
from almanac.indexer.chunker import Chunker
from almanac.indexer.readers import SUPPORTED_SUFFIXES, iter_files, read_bytes
from almanac.indexer.remote_stage import ChangedItem, RemoteStage, commit_finished
from almanac.indexer.report import IngestReport, NullProgress, Progress, StopRun

log = logging.getLogger(__name__)


def sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


class Indexer:
    """Ingests files and table rows into a collection. Callers hold the WriterLock around it."""

    def __init__(
        self, settings: Settings, catalog: Catalog, embedder: Embedder, progress: Progress | None = None
    ) -> None:
        self.settings, self.catalog, self.embedder = settings, catalog, embedder
        self.embedders = PrecisionEmbedders(settings.embedding, settings.models_dir, embedder)
        self.store = IndexStore(settings.index_dir, settings.index)
        self.chunker = Chunker(
            embedder.tokenizer, settings.chunking.size_tokens, settings.chunking.overlap_tokens
        )
        self.progress = progress or NullProgress()
        self.remote: RemoteStage | None = None  # set to parse, chunk and embed elsewhere (ray_engine)
        self._chars_left: int | None = None  # the text budget of the running ingest_paths

    def use_engine(self, engine: str, ray_address: str | None = None) -> None:
        """Parse, chunk and embed in this process ('local') or on a Ray cluster ('ray': `ray_address`, else
        ALMANAC_INGEST__RAY_ADDRESS, else a local Ray on 127.0.0.1); this process commits either way."""
        self.remote = None
        if engine == "ray":
            from almanac.indexer.ray_engine import RayStage

            self.remote = RayStage(self.settings, ray_address or self.settings.ingest.ray_address)

    def _embedder_for(self, name: str) -> Embedder:
        """The configured embedder, or under precision 'auto' the one an existing collection was built
        with (a collection's vectors never mix precisions)."""
        row = self.catalog.collection(name)
        if row is None or row.precision == self.embedder.precision:
            return self.embedder
        return self.embedders.for_collection(name, row.precision)

    def _collection(self, name: str, embedder: Embedder) -> CollectionRow:
        return self.catalog.ensure_collection(
            name, embedder.model_name, embedder.dimension, self.settings.index.kind, embedder.precision
        )

    @contextmanager
    def _writer(self, collection: str) -> Iterator[tuple[BatchWriter, IngestReport]]:
        started = time.perf_counter()
        report = IngestReport()
        embedder = self._embedder_for(collection)
        writer = BatchWriter(
            self.catalog,
            self.store,
            embedder,
            self._collection(collection, embedder),
            report,
            self.progress,
            self.settings.ingest.commit_chunks,
        )
        try:
            yield writer, report
            writer.flush()
        except StopRun:
            writer.flush()  # keep what was read: a resumed or yielded job goes on from here, not from zero
            raise
        finally:
            writer.close()
        report.version = writer.version
        report.seconds = time.perf_counter() - started

    # -- files -----------------------------------------------------------------------------------
    def ingest_paths(
        self, paths: Sequence[Path], collection: str, prune: bool = False, max_chars: int | None = None
    ) -> IngestReport:
        """Index files and folders (recursively); with `prune`, drop documents whose files are gone.

        `max_chars` bounds the text of the whole run (a server job's share): files past it are reported as
        failed and left for another run.
        """
        self._chars_left = max_chars
        missing = [p for p in paths if not p.exists()]
        files = sorted(set(iter_files([p for p in paths if p.exists()])))
        self.progress.start(len(files))
        with self._writer(collection) as (writer, report):
            report.failed.extend((str(p), "no such file or folder; check the path") for p in missing)
            # Without --prune only the given files' records matter: adding one file to a large collection
            # reads one record, not every document's.
            wanted = None if prune else [str(path.resolve()) for path in files]
            states = self.catalog.document_states(writer.collection.id, sources=wanted)
            for path in files:
                self._ingest_file(path, states, writer, report)
                self.progress.advance(items=1)
            self._remote_finish(None, writer, report)
            if prune:
                self._prune(states, writer, report)
        return report

    def _ingest_file(
        self, path: Path, states: dict[str, DocState], writer: BatchWriter, report: IngestReport
    ) -> None:
        source = str(path.resolve())
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            report.unsupported[path.suffix.lower()] += 1
            return
        try:
            stat = path.stat()
            known = states.get(source)
            if known and known.size == stat.st_size and known.mtime == stat.st_mtime:
                report.unchanged += 1
                return
            data = path.read_bytes()
            digest = sha256(data)
            if known and known.content_hash == digest:
                writer.touch(known.id, stat.st_mtime, stat.st_size)
                report.unchanged += 1
                return
            pending = PendingDocument(
                source, "document", "", digest, stat.st_mtime, stat.st_size, [], is_new=known is None
            )
            if self.remote is None:
                limits = self.settings.ingest
                doc = read_bytes(path.name, data, limits.max_file_bytes, limits.max_text_chars)
                self._spend_chars(sum(len(section.text) for section in doc.sections))
        except (AlmanacError, OSError) as exc:
            report.failed.append((source, str(exc)))
            log.warning("event=file_failed source=%s reason=%s", source, exc)
            return
        if self.remote is not None:
            self._remote_finish(ChangedItem(pending, path.name, data), writer, report)
            return
        pending.title, pending.chunks = doc.title, self.chunker.chunk(doc.sections)
        writer.add(pending)

    def _remote_finish(self, item: ChangedItem | None, writer: BatchWriter, report: IngestReport) -> None:
        """Submit `item` to the remote stage (None: drain it), then commit what came back finished."""
        if self.remote is not None:
            done = self.remote.drain(writer) if item is None else self.remote.submit(item, writer)
            commit_finished(done, writer, report, self._spend_chars)

    def _spend_chars(self, chars: int) -> None:
        """Count a file's text against the run's budget; FileTooLargeError once it would pass it."""
        if self._chars_left is None:
            return
        if chars > self._chars_left:
            raise FileTooLargeError(
                f"this job's text limit is reached ({self._chars_left} characters left, the file has "
                f"{chars}); ingest the file in a job of its own or raise ALMANAC_SERVER__MAX_JOB_TEXT_CHARS"
            )
        self._chars_left -= chars

    def _prune(self, states: dict[str, DocState], writer: BatchWriter, report: IngestReport) -> None:
        for source in states:
            if not source.startswith("db://") and not Path(source).exists():
                writer.delete(source)
                report.removed += 1

    # -- rows ------------------------------------------------------------------------------------
    def ingest_tables(self, db: SourceDatabase, tables: Sequence[str], collection: str) -> IngestReport:
        """Index allow-listed tables row by row; changed rows are re-embedded, deleted rows removed."""
        self.progress.start(None)
        with self._writer(collection) as (writer, report):
            for table in tables:
                try:
                    self._ingest_table(db, table, writer, report)
                except AlmanacError as exc:
                    report.failed.append((f"{db.name}.{table}", str(exc)))
                    log.warning("event=table_failed table=%s reason=%s", table, exc)
            self._remote_finish(None, writer, report)
        return report

    def _ingest_table(
        self, db: SourceDatabase, table: str, writer: BatchWriter, report: IngestReport
    ) -> None:
        info = db.check_table(table)
        states = self.catalog.document_states(writer.collection.id, prefix=f"db://{db.name}/{info.name}/")
        seen: set[str] = set()
        for key, row in db.iter_rows(info.name, self.settings.ingest.row_batch):
            uri = key.uri()
            seen.add(uri)
            text = render_row(info.name, row)
            digest = sha256(text.encode())
            known = states.get(uri)
            self.progress.advance(items=1)
            if known and known.content_hash == digest:
                report.unchanged += 1
                continue
            locator = f"{info.name} " + ",".join(f"{c}={v}" for c, v in key.key)
            doc = PendingDocument(
                uri, "row", f"{info.name} row", digest, 0.0, len(text), [], row_fields(row), known is None
            )
            if self.remote is not None:
                self._remote_finish(ChangedItem(doc, "", text.encode(), locator), writer, report)
                continue
            doc.chunks = self.chunker.chunk([Section(text, locator)])
            writer.add(doc)
        for uri in states.keys() - seen:
            writer.delete(uri)
            report.removed += 1

    # -- deletes ---------------------------------------------------------------------------------
    def compact(self, collection: str) -> IngestReport:
        """Rewrite a collection's index as one segment read from the catalog: every segment merged, every
        deletion dropped, the index kind chosen for its size (`almanac compact`; also repairs bad files)."""
        with self._writer(collection) as (writer, report):
            writer.segments.compact()
        return report

    def delete(self, sources: Sequence[str], collection: str) -> IngestReport:
        """Remove documents by source (a path is matched by its resolved form too)."""
        with self._writer(collection) as (writer, report):
            states = self.catalog.document_states(writer.collection.id)
            for source in sources:
                match = source if source in states else str(Path(source).resolve())
                if match in states:
                    writer.delete(match)
                    report.removed += 1
                else:
                    report.failed.append((source, "not in this collection; `almanac status` lists sources"))
        return report
