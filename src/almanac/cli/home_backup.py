"""A consistent copy of an ALMANAC_HOME taken while the server runs, and its restore (`almanac backup`).

What a backup holds, and why it is consistent without stopping anything or taking the writer lock:
1. the catalog, copied by SQLite's online backup API (a snapshot of one committed state, readers and the
   writer carry on);
2. exactly the index segment files that this catalog copy records as live: segment files are immutable and a
   writer keeps dropped ones for several versions, so the files named by the snapshot still exist when they
   are copied after it;
3. the adapters folder (safetensors, manifests, registry.json);
4. `manifest.json`, written last: time, index version per collection, every file with its size and sha256.

Not copied: `models/` (converted models, a cache re-derived from installed packages on first use), uploads
and job inboxes. A catalog in another database (PostgreSQL) is not copied: back it up with that database's
own tool (pg_dump); the backup then holds the index and adapters, and its manifest says so.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, make_url, select

from almanac import __version__
from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import CollectionRow, IndexSegmentRow, IndexVersionRow
from almanac.core.errors import ConfigError
from almanac.core.settings import Settings

MANIFEST = "manifest.json"
CATALOG_FILE = "catalog.db"
LOCK_FILES = ("writer.lock", "writer.json")  # the restore's own writer lock


@dataclass(frozen=True, slots=True)
class BackupReport:
    """What `take_backup` wrote."""

    versions: dict[str, int]
    files: int
    bytes: int
    catalog_copied: bool


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite catalog URL; None for another database (or an in-memory one).

    >>> sqlite_path("sqlite:////data/catalog.db"), sqlite_path("postgresql+psycopg://u@h/db")
    (PosixPath('/data/catalog.db'), None)
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database or "")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def take_backup(settings: Settings, dest: Path) -> BackupReport:
    """Write a backup of the home named by `settings` into `dest` (new or empty)."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"backup destination {dest} exists and is not empty; name a new or empty folder")
    dest.mkdir(parents=True, exist_ok=True)
    source_db = sqlite_path(settings.catalog_url)
    if source_db is not None:
        _copy_sqlite(source_db, dest / CATALOG_FILE)
        catalog = Catalog(f"sqlite:///{(dest / CATALOG_FILE).resolve()}")
    else:
        catalog = Catalog(settings.catalog_url)
    try:
        versions, segments = _live_segments(catalog)
    finally:
        catalog.close()
    copied = [dest / CATALOG_FILE] if source_db is not None else []
    for collection, name in segments:
        copied.append(_copy_file(settings.index_dir / collection / name, dest / "index" / collection / name))
    copied += [
        _copy_file(path, dest / "adapters" / rel) for path, rel in _adapter_files(settings.adapters_dir)
    ]
    files = [_entry(dest, path) for path in copied]
    manifest = {
        "format": 1,
        "almanac": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "catalog": CATALOG_FILE if source_db is not None else "external: back it up with its own tool",
        "versions": versions,
        "files": files,
    }
    tmp = dest / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    tmp.replace(dest / MANIFEST)
    size = sum(int(str(f["size"])) for f in files)
    return BackupReport(versions, len(files), size, source_db is not None)


def _copy_sqlite(source: Path, target: Path) -> None:
    """SQLite's online backup: one consistent committed state, without blocking the writer for long."""
    if not source.is_file():
        raise ConfigError(f"no catalog at {source}; nothing to back up (run `almanac ingest PATH` first)")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst, pages=1024)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()


def _live_segments(catalog: Catalog) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Latest index version per collection and the (collection, segment file) pairs live in the catalog."""
    with catalog.transaction() as s:
        versions = s.execute(  # a Result has .keys(): dict() would read it as a mapping
            select(CollectionRow.name, func.max(IndexVersionRow.version))
            .join(IndexVersionRow, IndexVersionRow.collection_id == CollectionRow.id)
            .group_by(CollectionRow.name)
        ).all()
        rows = s.execute(
            select(CollectionRow.name, IndexSegmentRow.name)
            .join(IndexSegmentRow, IndexSegmentRow.collection_id == CollectionRow.id)
            .where(IndexSegmentRow.dropped_version.is_(None))
            .order_by(CollectionRow.name, IndexSegmentRow.name)
        ).all()
        return {str(k): int(v) for k, v in versions}, [(str(c), str(n)) for c, n in rows]


def _adapter_files(adapters_dir: Path) -> Iterator[tuple[Path, Path]]:
    """(file, path relative to the adapters folder), skipping hidden names: locks and half-written temps."""
    if not adapters_dir.is_dir():
        return
    for path in sorted(adapters_dir.rglob("*")):
        rel = path.relative_to(adapters_dir)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            yield path, rel


def _copy_file(source: Path, target: Path) -> Path:
    if not source.is_file():
        raise ConfigError(f"{source} is recorded in the catalog but missing; run `almanac check`")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return target


def _entry(root: Path, path: Path) -> dict[str, object]:
    return {
        "path": path.relative_to(root).as_posix(),
        "size": path.stat().st_size,
        "sha256": sha256_file(path),
    }


def read_manifest(source: Path) -> dict[str, object]:
    """The backup's manifest, after checking that every file it lists is there with its sha256."""
    try:
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{source} is not an Almanac backup (no readable {MANIFEST}: {exc})") from exc
    for item in manifest["files"]:
        path = source / item["path"]
        if not path.is_file() or sha256_file(path) != item["sha256"]:
            raise ConfigError(f"backup file {path} is missing or its sha256 differs; the backup is damaged")
    return dict(manifest)


def restore_backup(settings: Settings, source: Path, force: bool = False) -> dict[str, object]:
    """Copy a verified backup into the home named by `settings`; returns its manifest.

    The home must be new or empty unless `force`, which replaces its catalog, index and adapters (and
    keeps models/ and uploads)."""
    manifest = read_manifest(source)
    home = settings.home
    if home.exists() and any(p.name not in LOCK_FILES for p in home.iterdir()) and not force:
        raise ConfigError(f"ALMANAC_HOME={home} is not empty; restore into a new home, or add --force")
    target_db = sqlite_path(settings.catalog_url)
    has_catalog = manifest["catalog"] == CATALOG_FILE
    if has_catalog and target_db is None:
        raise ConfigError("the backup holds a SQLite catalog but ALMANAC_CATALOG__URL names another database")
    if not has_catalog and target_db is not None:
        raise ConfigError(
            "the backup holds no catalog (it was in PostgreSQL); restore that with pg_restore and point "
            "ALMANAC_CATALOG__URL at it, then run `almanac restore` again"
        )
    home.mkdir(parents=True, exist_ok=True)
    _clear(home, target_db)
    for item in manifest["files"]:  # type: ignore[attr-defined]
        rel = Path(item["path"])
        target = target_db if rel.as_posix() == CATALOG_FILE else home / rel
        assert target is not None
        _copy_file(source / rel, target)
    return manifest


def _clear(home: Path, catalog_db: Path | None) -> None:
    """Remove what a restore replaces: the catalog (with its -wal/-shm), index/ and adapters/."""
    if catalog_db is not None:
        for suffix in ("", "-wal", "-shm"):
            catalog_db.with_name(catalog_db.name + suffix).unlink(missing_ok=True)
    for folder in ("index", "adapters"):
        shutil.rmtree(home / folder, ignore_errors=True)
