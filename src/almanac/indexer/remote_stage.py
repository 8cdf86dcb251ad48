"""The remote stage port: where the Indexer sends changed items to be parsed, chunked and embedded elsewhere.

The Indexer (the one writer) finds what changed and submits it; a remote stage (indexer.ray_engine.RayStage)
gives the items back finished, with title, chunks and vectors, or with the reason they failed, and the
Indexer commits them through its BatchWriter exactly as it commits its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from almanac.core.errors import FileTooLargeError
from almanac.indexer.batch_writer import BatchWriter, PendingDocument
from almanac.indexer.report import IngestReport

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ChangedItem:
    """A new or changed file or row as the driver found it, and what the remote stage made of it.

    `doc` has no chunks yet (and a file's title comes from parsing); `name` is a file's name (it picks
    the reader), "" for a row; `data` the file's bytes or the row's text (UTF-8); `locator` a row's.
    The remote stage fills `doc` (chunks, vectors), or `error`, and `chars` (text characters parsed).
    """

    doc: PendingDocument
    name: str
    data: bytes
    locator: str = ""
    error: str = ""
    chars: int = 0


class RemoteStage(Protocol):
    """Parses, chunks and embeds changed items off the writer's process."""

    def submit(self, item: ChangedItem, writer: BatchWriter) -> Iterator[ChangedItem]:
        """Take one item; returns the items finished meanwhile (possibly none)."""
        ...

    def drain(self, writer: BatchWriter) -> Iterator[ChangedItem]:
        """Finish every item taken so far and return them."""
        ...


def commit_finished(
    finished: Iterable[ChangedItem],
    writer: BatchWriter,
    report: IngestReport,
    spend_chars: Callable[[int], None],
) -> None:
    """Hand finished items to the writer. A failed one is reported as a local ingest reports it, and so is
    a file past the run's text budget (`spend_chars` raises FileTooLargeError, as the Indexer's does)."""
    for done in finished:
        reason = done.error
        if not reason and done.doc.kind == "document":
            try:
                spend_chars(done.chars)
            except FileTooLargeError as exc:
                reason = str(exc)
        if reason:
            report.failed.append((done.doc.source, reason))
            log.warning("event=file_failed source=%s reason=%s", done.doc.source, reason)
        else:
            writer.add(done.doc)
