"""`almanac status | check | compact`: look after a home's collections and their indexes."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from almanac.cli import wiring
from almanac.cli.command_parser import CommandParser, examples
from almanac.core.index_store import IndexStore
from almanac.core.settings import Settings
from almanac.indexer.consistency import check_collection
from almanac.indexer.writer_lock import WriterLock


def register(sub: argparse._SubParsersAction[CommandParser]) -> None:
    """Add the commands to the `almanac` parser."""
    p = sub.add_parser(
        "status", help="collections, counts and index versions", epilog=examples("almanac status --json")
    )
    p.add_argument("--json", action="store_true", help="print ALMANAC_HOME and the collections as JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "check",
        help="verify that each collection's index agrees with the catalog",
        epilog=examples("almanac check"),
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "compact",
        help="rewrite a collection's index as one segment from the catalog (merge, drop deletions, repair)",
        epilog=examples("almanac compact", "almanac compact --collection shop"),
    )
    p.add_argument(
        "--collection", "-c", help="collection to compact (default: ALMANAC_DEFAULT_COLLECTION, 'default')"
    )
    p.set_defaults(func=cmd_compact)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Show collections."""
    catalog = wiring.open_catalog(settings)
    stats = [catalog.stats(name) for name in catalog.collection_names()]
    if args.json:
        payload = {"home": str(settings.home.resolve()), "collections": [asdict(s) for s in stats]}
        print(json.dumps(payload, indent=2))
        return 0
    print(f"ALMANAC_HOME={settings.home.resolve()}")
    if not stats:
        print("no collections yet; run `almanac ingest PATH`")
    for s in stats:
        print(
            f"{s.name}: {s.documents} documents, {s.chunks} chunks, index v{s.version} ({s.index_kind}), "
            f"model {s.embedding_model} ({s.dimension}d)"
        )
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    """Report collections whose published index disagrees with the catalog."""
    catalog = wiring.open_catalog(settings)
    store = IndexStore(settings.index_dir, settings.index)
    bad = 0
    for name in catalog.collection_names():
        problems = check_collection(catalog, store, name)
        bad += bool(problems)
        print(f"{name}: " + ("ok" if not problems else "; ".join(problems)))
    if bad:
        print("run `almanac compact --collection NAME` to publish an index rebuilt from the catalog")
    return 1 if bad else 0


def cmd_compact(args: argparse.Namespace, settings: Settings) -> int:
    """Merge every segment of a collection into one, read from the catalog."""
    collection = args.collection or settings.default_collection
    with WriterLock(settings.home, settings.ingest.lock_timeout_s):
        catalog = wiring.open_catalog(settings)
        catalog.require_collection(collection)
        report = wiring.build_indexer(settings, catalog).compact(collection)
    print(f"{collection}: index v{report.version}, one segment ({report.seconds:.1f} s)")
    return 0
