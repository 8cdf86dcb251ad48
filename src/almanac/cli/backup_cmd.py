"""`almanac backup DEST` and `almanac restore SRC`: a consistent copy of a home while the server runs.

What is copied, and why it is consistent, is explained in almanac.cli.home_backup. A restore verifies every
file's sha256 first, copies into a new or empty home (or replaces catalog, index and adapters with --force,
holding the writer lock), then runs `almanac check` on the result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from almanac.cli import wiring
from almanac.cli.command_parser import CommandParser, examples
from almanac.cli.home_backup import restore_backup, take_backup
from almanac.core.index_store import IndexStore
from almanac.core.settings import Settings
from almanac.indexer.consistency import check_collection
from almanac.indexer.writer_lock import WriterLock


def register(sub: argparse._SubParsersAction[CommandParser]) -> None:
    """Add `backup` and `restore`."""
    p = sub.add_parser(
        "backup",
        help="copy catalog, index and adapters into a new folder, consistently, while the server runs",
        description="Snapshot the catalog (SQLite online backup), the index segments it records and the "
        "adapters into DEST, with a manifest of sha256s. models/ is not copied: it is a cache re-derived "
        "on first use. A PostgreSQL catalog is not copied: back it up with pg_dump.",
        epilog=examples("almanac backup /backups/almanac-2026-11-27"),
    )
    p.add_argument("dest", type=Path, help="new or empty folder to write the backup into")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser(
        "restore",
        help="restore a backup into ALMANAC_HOME, verify it and run the consistency check",
        description="Verify every file of the backup against its sha256, copy it into ALMANAC_HOME (new or "
        "empty unless --force) and print `almanac check` for the result.",
        epilog=examples(
            "ALMANAC_HOME=/srv/almanac almanac restore /backups/almanac-2026-11-27",
            "almanac restore /backups/almanac-2026-11-27 --force",
        ),
    )
    p.add_argument("source", type=Path, help="folder written by `almanac backup`")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the catalog, index and adapters of a non-empty home (stop the server first)",
    )
    p.set_defaults(func=cmd_restore)


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    """Write the backup and summarise it."""
    report = take_backup(settings, args.dest)
    versions = ", ".join(f"{name} v{version}" for name, version in sorted(report.versions.items()))
    print(f"backup in {args.dest}: {report.files} files, {report.bytes / 1e6:.1f} MB ({versions or 'empty'})")
    if not report.catalog_copied:
        print(
            "note: the catalog is not SQLite and was not copied; back it up with the database's own tool "
            "(pg_dump), taken after this backup",
            file=sys.stderr,
        )
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    """Restore under the writer lock, then check every collection; exit 1 when one disagrees."""
    with WriterLock(settings.home, settings.ingest.lock_timeout_s):
        restore_backup(settings, args.source, force=args.force)
    catalog = wiring.open_catalog(settings)
    store = IndexStore(settings.index_dir, settings.index)
    bad = 0
    try:
        for name in catalog.collection_names():
            problems = check_collection(catalog, store, name)
            bad += bool(problems)
            print(f"{name}: " + ("ok" if not problems else "; ".join(problems)))
    finally:
        catalog.close()
    print(f"restored {args.source} into ALMANAC_HOME={settings.home}")
    return 1 if bad else 0
