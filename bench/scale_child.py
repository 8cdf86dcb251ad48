"""Child processes of bench/scale.py, one mode each; the driver sets ALMANAC_HOME, the hashing embedder and
PYTHONPATH (this checkout's src/, or the worktree of the format before segments).

    python bench/scale_child.py ingest --db SOURCE.sqlite --rows N --out ingest.json
    python bench/scale_child.py change --kind update --db SOURCE.sqlite --row 4242 --token ZQ.. --out c.json
    python bench/scale_child.py recall --queries 200 --out recall.json     # the segmented format only
    python bench/scale_child.py threshold --out threshold.json             # FAISS alone

`ingest` and `change` use only what both formats have: wiring.open_catalog / build_indexer, Settings,
SourceDatabase, Indexer.ingest_tables / ingest_paths, the Progress protocol, WriterLock,
Catalog.register_source, and the `event=batch_committed` log record, whose creation time is the commit.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from scale_data import TABLE
from scale_index import recall, threshold

import almanac
from almanac.cli import wiring
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase
from almanac.indexer import batch_writer
from almanac.indexer.writer_lock import WriterLock

SOURCE = "scale"  # the source database's registered name: row hits read db://scale/shipments/id=N


class Timeline:
    """Progress that records (seconds, rows, chunks) at each 1% of `expected` rows and reports on stderr."""

    def __init__(self, expected: int) -> None:
        self.expected, self.rows, self.chunks = expected, 0, 0
        self.marks = [-(-expected * i // 100) for i in range(1, 101)]  # ceil: row count at i%
        self.points: list[tuple[float, int, int]] = []
        self.restart()

    def restart(self) -> None:
        """Time zero is now."""
        self.started = self.printed = time.perf_counter()
        self.points = [(0.0, 0, 0)]

    def elapsed(self) -> float:
        """Seconds since time zero."""
        return time.perf_counter() - self.started

    def start(self, total_items: int | None) -> None:
        """Ignored: the expected row count is known."""

    def advance(self, items: int = 0, chunks: int = 0) -> None:
        """Count; record a point when the next 1% mark is passed."""
        self.rows, self.chunks = self.rows + items, self.chunks + chunks
        if len(self.points) <= 100 and self.rows >= self.marks[len(self.points) - 1]:
            self.points.append((self.elapsed(), self.rows, self.chunks))
            if time.perf_counter() - self.printed >= 10 or len(self.points) == 101:
                self._print()

    def _print(self) -> None:
        self.printed = time.perf_counter()
        seconds = self.elapsed()
        rate = self.rows / seconds if seconds > 0 else 0.0
        eta = (self.expected - self.rows) / rate if rate > 0 else 0.0
        print(
            f"  ingest {self.rows:,}/{self.expected:,} rows ({self.rows / self.expected:.0%}), "
            f"{rate:,.0f} rows/s, {self.chunks:,} chunks committed, ETA {eta:,.0f} s",
            file=sys.stderr,
            flush=True,
        )

    def rate_between(self, first_pct: int, last_pct: int, end_s: float | None = None) -> float:
        """Rows/s from the `first_pct` mark to the `last_pct` mark (100 with `end_s`: to the call's end)."""
        t0, r0, _ = self.points[first_pct]
        t1, r1, _ = (end_s, self.rows, 0) if end_s is not None else self.points[last_pct]
        return (r1 - r0) / (t1 - t0) if t1 > t0 else 0.0


class CommitClock(logging.Handler):
    """Wall-clock time (time.time()) of each `event=batch_committed` record of the batch writer."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.commits: list[float] = []
        logger = logging.getLogger(batch_writer.__name__)
        logger.setLevel(logging.INFO)
        logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the creation time of a commit record."""
        if str(record.msg).startswith("event=batch_committed"):
            self.commits.append(record.created)


def time_flushes(spans: list[tuple[float, float]]) -> None:
    """Record (start, end) perf_counter of every BatchWriter.flush (embed + transaction + index publish)."""
    original = batch_writer.BatchWriter.flush

    def flush(self: batch_writer.BatchWriter) -> None:
        started = time.perf_counter()
        try:
            original(self)
        finally:
            spans.append((started, time.perf_counter()))

    batch_writer.BatchWriter.flush = flush  # type: ignore[method-assign]


def ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Index the whole table once, as `almanac ingest-db` does (source registered, writer lock held)."""
    settings, url = Settings(), f"sqlite:///{args.db.resolve()}"
    timeline = Timeline(args.rows)
    db = SourceDatabase(SOURCE, url)
    try:
        with WriterLock(settings.home, settings.ingest.lock_timeout_s):
            catalog = wiring.open_catalog(settings)
            catalog.register_source(SOURCE, url)
            indexer = wiring.build_indexer(settings, catalog, timeline)
            timeline.restart()
            report = indexer.ingest_tables(db, [TABLE], settings.default_collection)
            total = timeline.elapsed()
    finally:
        db.close()
    complete = len(timeline.points) == 101  # every 1% mark passed: the table had the rows expected
    first = timeline.rate_between(0, 10) if complete else 0.0
    last = timeline.rate_between(90, 100, end_s=total) if complete else 0.0
    return {
        "rows": timeline.rows,
        "seconds": total,
        "rows_per_s": timeline.rows / total if total > 0 else 0.0,
        "first10_rows_per_s": first,
        "last10_rows_per_s": last,
        "last_over_first": last / first if first > 0 else 0.0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "report": report.as_json(),
        "timeline": [{"s": round(t, 3), "rows": r, "chunks": c} for t, r, c in timeline.points],
    }


def _change_source(args: argparse.Namespace) -> None:
    if args.kind == "add":
        args.doc.parent.mkdir(parents=True, exist_ok=True)
        args.doc.write_text(
            f"# Courier note\n\nDelivery confirmed at the depot; tracking code {args.token}.\n"
        )
        return
    with sqlite3.connect(args.db) as con:
        if args.kind == "update":
            con.execute(f"UPDATE {TABLE} SET note = note || ' ' || ? WHERE id = ?", (args.token, args.row))
        else:
            con.execute(f"DELETE FROM {TABLE} WHERE id = ?", (args.row,))
    con.close()


def change(args: argparse.Namespace) -> dict[str, Any]:
    """Change one row (update, delete) or add one document, then ingest as the CLI would."""
    settings, clock, spans = Settings(), CommitClock(), []
    time_flushes(spans)
    _change_source(args)
    source_changed_at = time.time()
    db = SourceDatabase(SOURCE, f"sqlite:///{args.db.resolve()}")
    try:
        with WriterLock(settings.home, settings.ingest.lock_timeout_s):
            indexer = wiring.build_indexer(settings, wiring.open_catalog(settings))
            started = time.perf_counter()
            if args.kind == "add":
                report = indexer.ingest_paths([args.doc], settings.default_collection)
            else:
                report = indexer.ingest_tables(db, [TABLE], settings.default_collection)
            publish = time.perf_counter() - started
    finally:
        db.close()
    busy = [(a, b) for a, b in spans if b - a > 0.0005]  # flushes with nothing to commit return at once
    return {
        "kind": args.kind,
        "publish_s": publish,
        "scan_s": (busy[0][0] - started) if busy else None,
        "commit_s": sum(b - a for a, b in busy),
        "commits": len(clock.commits),
        "source_changed_at": source_changed_at,
        "commit_at": clock.commits[0] if clock.commits else None,
        "report": report.as_json(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """One mode and its arguments."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = p.add_subparsers(dest="mode", required=True)
    for name in ("ingest", "change", "recall", "threshold"):
        mode = modes.add_parser(name)
        mode.add_argument("--out", type=Path, required=True)
        mode.add_argument("--db", type=Path)
    modes.choices["ingest"].add_argument("--rows", type=int, required=True)
    modes.choices["change"].add_argument("--kind", choices=("update", "delete", "add"), required=True)
    modes.choices["change"].add_argument("--row", type=int, default=0)
    modes.choices["change"].add_argument("--token", default="")
    modes.choices["change"].add_argument("--doc", type=Path)
    modes.choices["recall"].add_argument("--queries", type=int, default=200)
    modes.choices["threshold"].add_argument("--sizes", default="50000,100000,150000,200000,300000,500000")
    modes.choices["threshold"].add_argument("--queries", type=int, default=200)
    modes.choices["threshold"].add_argument("--dim", type=int, default=384)
    modes.choices["threshold"].add_argument("--limit-ms", type=float, default=30.0)
    return p.parse_args(argv)


def main() -> int:
    """Run one mode; write its JSON (with the code folder it ran) to --out."""
    args = parse_args()
    modes = {"ingest": ingest, "change": change, "recall": recall, "threshold": threshold}
    result = modes[args.mode](args)
    result["code"] = str(Path(almanac.__file__).resolve().parent)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
