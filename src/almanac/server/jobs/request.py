"""Checks a client's job request before it is queued: where a folder may be, which database, which tables.

A folder must resolve (symlinks followed) inside one of ``settings.server.job_roots`` (default
ALMANAC_HOME/inbox), so a client cannot make the server read arbitrary paths. A database job names a source
registered in the catalog (by `almanac ingest-db` or an earlier job), or gives a URL, which is registered
under a name (given, or derived from the database name) so the job's stored spec never holds credentials.
A URL is opened and connected to before it is registered, so a bad one never replaces a working one.

A caller bound to a collection passes `visible(source)`: it may name only sources its collection holds rows
of, registers none by URL (sources are shared by every collection), and its messages list no source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from almanac.core.catalog import Catalog
from almanac.core.errors import InputError, SourceError
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase
from almanac.indexer.ray_engine import ray_installed

MAX_TABLES = 100
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# NUL makes os calls raise ValueError (a 500); no control character belongs in a path or a table name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Visible = Callable[[str], bool]  # source name -> may this caller name it


def job_roots(settings: Settings) -> list[Path]:
    """The folders jobs may ingest from, resolved."""
    roots = settings.server.job_roots or [settings.home / "inbox"]
    return [root.resolve() for root in roots]


class JobRequest:
    """Turns a validated request body into a (kind, spec) to store."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings, self.catalog = settings, catalog

    def client_job(self, body: dict[str, Any], visible: Visible | None = None) -> tuple[str, dict[str, Any]]:
        """(kind, spec) for a `folder` or `database` job; InputError says what is wrong.

        `visible` scopes a bound caller's sources (None: every source).
        """
        kind = body.get("kind")
        collection = body.get("collection") or self.settings.default_collection
        # Only a Ray job records its engine: local jobs keep the spec (and idempotency match) they had.
        engine = {"engine": "ray"} if self.engine(body.get("engine")) == "ray" else {}
        if kind == "folder":
            path = str(self.folder(str(body.get("path") or "")))
            return kind, {"path": path, "collection": collection} | engine
        if kind == "database":
            source = self.source(body.get("source"), body.get("url"), body.get("name"), visible)
            return kind, {
                "source": source,
                "tables": self.tables(body.get("tables")),
                "collection": collection,
            } | engine
        raise InputError(f"unknown job kind {kind!r}; use 'folder' or 'database'")

    def folder(self, path: str) -> Path:
        """The resolved folder, checked to lie under a job root."""
        roots = job_roots(self.settings)
        allowed = ", ".join(str(r) for r in roots)
        if not path:
            raise InputError(f"a folder job needs a path under one of: {allowed}")
        _check_text("path", path)
        given = Path(path)
        try:  # a name over the file system's limits is an OSError, not a server fault
            folder = (given if given.is_absolute() else roots[0] / given).resolve()
            is_dir = folder.is_dir()
        except OSError as exc:
            raise InputError(f"folder {path[:200]!r} cannot be used: {exc.strerror}") from None
        if not any(folder.is_relative_to(root) for root in roots):
            raise InputError(
                f"folder {path!r} is outside the folders jobs may read ({allowed}); "
                "move it there or add its parent to ALMANAC_SERVER__JOB_ROOTS"
            )
        if not is_dir:
            raise InputError(f"no folder at {folder}; copy the files there first")
        return folder

    def source(
        self, source: str | None, url: str | None, name: str | None, visible: Visible | None = None
    ) -> str:
        """The registered source's name (registering `url` first, once it connects, when one is given)."""
        known = self.catalog.source_urls()
        if url:
            source = name or _derive_name(url)
            if not _NAME.match(source):
                raise InputError(f"source name {source!r} must match {_NAME.pattern}; pass another `name`")
            if visible is not None:  # the route refuses this first; registered sources are shared
                raise InputError("a key bound to a collection cannot register a source by URL")
            _check_url(source, url)
            self.catalog.register_source(source, url)
            return source
        if visible is not None:
            if not source or source not in known or not visible(source):
                raise InputError(_unknown_to_collection())
            return source
        if not source or source not in known:
            names = ", ".join(sorted(known)) or "(none; give `url` instead)"
            raise InputError(f"unknown source {source!r}; registered sources: {names}")
        return source

    @staticmethod
    def engine(engine: object) -> str:
        """'local' (default) or 'ray': parsing, chunking and embedding on Ray (the server commits)."""
        if engine in (None, "local"):
            return "local"
        if engine != "ray":
            raise InputError(f"unknown engine {engine!r}; use 'local' or 'ray'")
        if not ray_installed():
            raise InputError(
                "engine 'ray' needs the ray extra on the server (pip install 'almanac[ray]'); "
                "use engine 'local' until it is installed"
            )
        return "ray"

    @staticmethod
    def tables(tables: object) -> list[str]:
        """The table names, checked for shape (existence is checked when the job runs)."""
        if not isinstance(tables, list) or not tables or not all(isinstance(t, str) and t for t in tables):
            raise InputError("a database job needs `tables`: a non-empty list of table names")
        if len(tables) > MAX_TABLES:
            raise InputError(f"at most {MAX_TABLES} tables per job; split the job")
        for table in tables:
            _check_text("table name", table)
        return list(dict.fromkeys(tables))


def _check_text(what: str, text: str) -> None:
    """InputError when `text` holds a control character (NUL, newline, ...)."""
    found = _CONTROL.search(text)
    if found:
        raise InputError(f"{what} {text!r} holds a control character ({found.group()!r}); remove it")


def _check_url(name: str, url: str) -> None:
    """InputError unless `url` opens and connects (the registered URL, if any, is left as it was)."""
    try:
        db = SourceDatabase(name, url)
    except SourceError as exc:
        raise InputError(f"{exc}; the source was not registered") from None
    try:
        with db.read_only():
            pass
    except SourceError as exc:
        raise InputError(f"{exc}; the source was not registered") from None
    finally:
        db.close()


def _unknown_to_collection() -> str:
    return (
        "that source is unknown to this key's collection; a key bound to a collection may only ingest "
        "sources it already holds (`source`); an admin key bound to no collection registers new ones"
    )


def _derive_name(url: str) -> str:
    """The database name (a SQLite file's stem), as `almanac ingest-db` derives it."""
    try:
        database = make_url(url).database or "db"
    except ArgumentError as exc:
        raise InputError(f"cannot parse the source URL: {exc}") from None
    stem = Path(database).stem if "/" in database else database
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "db"
