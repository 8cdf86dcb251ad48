"""`almanac ingest | ingest-db | delete | search`: the indexer and retrieval from a shell."""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from almanac.cli import wiring
from almanac.cli.command_parser import CommandParser, examples
from almanac.cli.progress_bar import ProgressBar
from almanac.core.errors import InputError
from almanac.core.search_filter import SearchFilter
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase, mask_url
from almanac.indexer.report import IngestReport
from almanac.indexer.writer_lock import WriterLock

_COLLECTION_HELP = "collection to use (default: ALMANAC_DEFAULT_COLLECTION, 'default')"


def register(sub: argparse._SubParsersAction[CommandParser]) -> None:
    """Add the indexing and search commands."""
    p = sub.add_parser(
        "ingest",
        help="index files and folders",
        description="Index files and folders; unchanged files are skipped, changed ones re-indexed.",
        epilog=examples(
            "almanac ingest samples/documents", "almanac ingest ~/notes handbook.pdf -c handbook --prune"
        ),
    )
    p.add_argument("paths", nargs="+", type=Path, help="files and folders to index")
    p.add_argument("--collection", "-c", help=_COLLECTION_HELP)
    p.add_argument("--prune", action="store_true", help="remove documents whose files are gone")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_engine_options(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "ingest-db",
        help="index rows of allow-listed database tables",
        epilog=examples(
            "almanac ingest-db sqlite:///shop.db --name shop --table bikes --table stores",
            "almanac ingest-db postgresql+psycopg://reader@db/shop -t products -c catalog",
        ),
    )
    p.add_argument("url", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db")
    p.add_argument(
        "--table", "-t", action="append", required=True, dest="tables", help="table to index; repeat for more"
    )
    p.add_argument("--collection", "-c", help=_COLLECTION_HELP)
    p.add_argument("--name", help="source name used in citations (default: the database name)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_engine_options(p)
    p.set_defaults(func=cmd_ingest_db)

    p = sub.add_parser(
        "delete",
        help="remove documents by source path or row URI",
        epilog=examples("almanac delete samples/documents/old.md", "almanac delete 'db://shop/bikes/id=42'"),
    )
    p.add_argument("sources", nargs="+", help="source paths as ingested, or row URIs db://SOURCE/TABLE/KEY")
    p.add_argument("--collection", "-c", help=_COLLECTION_HELP)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser(
        "search",
        help="hybrid search without generation",
        epilog=examples(
            'almanac search "opening hours" -k 3',
            'almanac search "brake pads" -c catalog --json',
            'almanac search "light bike" --table bikes --where color=red --since 2026-01-01',
        ),
    )
    p.add_argument("query", help="what to search for: a question or keywords")
    p.add_argument("--collection", "-c", help=_COLLECTION_HELP)
    p.add_argument("-k", type=int, default=5, help="hits to show, at most server.max_top_k")
    p.add_argument("--json", action="store_true", help="print [{text, source, locator, score, kind}]")
    _add_filter_options(p)
    p.set_defaults(func=cmd_search)


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    """Where parsing, chunking and embedding run; this process commits either way (the one writer)."""
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: in this process; ray: a Ray Data pipeline (needs the ray extra)",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="Ray cluster to join, HOST:PORT or ray://HOST:10001 (default: ALMANAC_INGEST__RAY_ADDRESS, "
        "else a local Ray on 127.0.0.1)",
    )


def _add_filter_options(p: argparse.ArgumentParser) -> None:
    """The search filter (core/search_filter.py): every option given must hold; none given: no filter."""
    p.add_argument("--kind", choices=["document", "row"], help="only document chunks, or only table rows")
    p.add_argument(
        "--source-prefix",
        metavar="PREFIX",
        help="only sources that start with PREFIX: a folder (relative to here) or db://SOURCE/",
    )
    p.add_argument("--table", help="only rows of this table")
    p.add_argument("--since", metavar="TIME", help="only content ingested at or after TIME (ISO 8601; UTC)")
    p.add_argument("--until", metavar="TIME", help="only content ingested before TIME (ISO 8601; UTC)")
    p.add_argument(
        "--where",
        action="append",
        metavar="KEY=VALUE",
        help="only rows whose column KEY shows VALUE in the row text; repeat for more",
    )


def _finish(report: IngestReport, as_json: bool) -> int:
    if as_json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.summary())
        for source, reason in report.failed:
            print(f"failed: {source}: {reason}")
    return 0 if report.ok else 1


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Index files and folders."""
    collection = args.collection or settings.default_collection
    bar = ProgressBar("file")
    with WriterLock(settings.home, settings.ingest.lock_timeout_s):
        indexer = wiring.build_indexer(settings, wiring.open_catalog(settings), bar)
        try:
            indexer.use_engine(args.engine, args.ray_address)
            report = indexer.ingest_paths(args.paths, collection, prune=args.prune)
        finally:
            bar.close()
    return _finish(report, args.json)


def _source_name(url: str, given: str | None) -> str:
    name = given or make_url(url).database or "db"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(name).stem if "/" in name else name)
    if not name:
        raise InputError("cannot derive a source name from the URL; pass --name NAME")
    return name


def cmd_ingest_db(args: argparse.Namespace, settings: Settings) -> int:
    """Index database rows."""
    collection = args.collection or settings.default_collection
    name = _source_name(args.url, args.name)
    bar = ProgressBar("row")
    db = SourceDatabase(name, args.url)
    try:
        with WriterLock(settings.home, settings.ingest.lock_timeout_s):
            catalog = wiring.open_catalog(settings)
            catalog.register_source(name, args.url)
            indexer = wiring.build_indexer(settings, catalog, bar)
            indexer.use_engine(args.engine, args.ray_address)
            report = indexer.ingest_tables(db, args.tables, collection)
    finally:
        bar.close()
        db.close()
    if not args.json:
        print(f"source {name}: {mask_url(args.url)}")
    return _finish(report, args.json)


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    """Remove documents."""
    collection = args.collection or settings.default_collection
    with WriterLock(settings.home, settings.ingest.lock_timeout_s):
        catalog = wiring.open_catalog(settings)
        catalog.require_collection(collection)
        report = wiring.build_indexer(settings, catalog).delete(args.sources, collection)
    return _finish(report, False)


def _moment(option: str, text: str | None) -> datetime | None:
    try:
        return None if text is None else datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option} {text!r} is not an ISO 8601 time, e.g. 2026-01-31T12:00Z") from None


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not key or not sep:
        raise InputError(f"--where takes KEY=VALUE, e.g. --where color=red; got {text!r}")
    return key, value


def search_filter(args: argparse.Namespace) -> SearchFilter | None:
    """The filter the search options ask for (None: none); a relative --source-prefix is a local path."""
    prefix = args.source_prefix
    if prefix and not prefix.startswith(("db://", "/")):
        prefix = str(Path(prefix).resolve()) + ("/" if prefix.endswith("/") else "")
    return SearchFilter.of(
        kind=args.kind,
        source_prefix=prefix,
        table=args.table,
        ingested_after=_moment("--since", args.since),
        ingested_before=_moment("--until", args.until),
        fields=[_pair(text) for text in args.where or []],
    )


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    """Search and print hits."""
    collection = args.collection or settings.default_collection
    if not 1 <= args.k <= settings.server.max_top_k:
        raise InputError(f"-k must be between 1 and {settings.server.max_top_k}")
    hits = wiring.search_live(settings, args.query, collection, args.k, search_filter(args))
    if args.json:
        rows = [{k: v for k, v in h.as_json().items() if k != "id"} for h in hits]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for rank, hit in enumerate(hits, start=1):
        where = f" ({hit.locator})" if hit.locator else ""
        print(f"[{rank}] {hit.score:.4f} {hit.source}{where}\n    {hit.text[:200].replace(chr(10), ' ')}")
    return 0
