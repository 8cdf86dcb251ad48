"""API keys stored as salted scrypt hashes in the catalog; the plain key is shown once, at creation.

A key reads ``alm_<8 hex>_<43 url-safe chars>``; its first 12 characters (``alm_<8 hex>``) are the prefix
kept in clear for listing, revoking and finding the row to verify against. Verification runs scrypt
(slow on purpose) once per key and process, then remembers a SHA-256 of the key that passed; the row is
still read on every call, so a key revoked from the CLI stops working at once in a running server. Failures
are never cached. `verify` takes a guard that runs only before scrypt would (a key not already passed): the
server's failed-check limit raises there, so a flood of wrong secrets for a known prefix costs no hashing
while the key that already passed keeps working.

    >>> store = KeyStore(Catalog("sqlite://"))
    >>> key = store.create("read", None)
    >>> key[:4], len(key), store.verify(key).scope
    ('alm_', 56, 'read')
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import ApiKeyRow
from almanac.core.errors import InputError, NotFoundError
from almanac.server.keys.principal import SCOPES, Principal

log = logging.getLogger(__name__)

_PREFIX_LEN = 12  # "alm_" + 8 hex
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~16 MiB and tens of ms per hash: slow for guessing, fine once


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What `keys list` shows: never the key or its hash."""

    prefix: str
    scope: str
    collection: str | None
    created_at: datetime
    revoked: bool


def hash_key(key: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` of a key (a fresh random salt unless one is given)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(key.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt${n}${r}${p}$".format(**_SCRYPT) + f"{salt.hex()}${digest.hex()}"


def check_key(key: str, stored: str) -> bool:
    """True when `key` hashes to `stored` (constant-time comparison)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        params = {"n": int(n), "r": int(r), "p": int(p)}
        if kind != "scrypt":
            return False
        fresh = hashlib.scrypt(key.encode(), salt=bytes.fromhex(salt), dklen=32, **params)
    except ValueError:
        return False
    return hmac.compare_digest(fresh.hex(), digest)


class KeyStore:
    """Creates, verifies, lists and revokes API keys (table api_keys of the catalog)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._passed: dict[str, str] = {}  # prefix -> sha256 of the key that passed scrypt
        self._lock = threading.Lock()

    def create(self, scope: str, collection: str | None = None) -> str:
        """A new key with `scope`, optionally bound to one collection; the plain key, to show once."""
        if scope not in SCOPES:
            raise InputError(f"unknown scope {scope!r}; use one of: {', '.join(SCOPES)}")
        for attempt in range(3):  # 32-bit prefixes: a clash is rare, and a new draw fixes it
            prefix = "alm_" + secrets.token_hex(4)
            key = f"{prefix}_{secrets.token_urlsafe(32)}"
            try:
                row = ApiKeyRow(prefix=prefix, key_hash=hash_key(key), scope=scope, collection=collection)
                with self.catalog.transaction() as s:
                    s.add(row)
                break
            except IntegrityError:
                if attempt == 2:
                    raise
        log.info("event=key_created prefix=%s scope=%s collection=%s", prefix, scope, collection)
        return key

    def has_keys(self) -> bool:
        """True once any key was created. Revoked keys count: revoking every key locks the server (every
        request 401) instead of opening it to anyone who can reach it."""
        with self.catalog.transaction() as s:
            return s.scalar(select(ApiKeyRow.id).limit(1)) is not None

    def verify(self, key: str, before_hash: Callable[[str], None] | None = None) -> Principal | None:
        """The principal of a valid, unrevoked key; None otherwise.

        `before_hash(prefix)` runs just before a scrypt check (never for a key that already passed, nor for
        an unknown or revoked prefix); an exception it raises (a rate limit) ends the check unhashed.
        """
        prefix = key[:_PREFIX_LEN]
        if not prefix.startswith("alm_") or len(key) > 256:
            return None
        with self.catalog.transaction() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
        if row is None or row.revoked:
            return None
        fast = hashlib.sha256(row.key_hash.encode() + key.encode()).hexdigest()
        with self._lock:
            known = self._passed.get(prefix)
        if known is None or not hmac.compare_digest(known, fast):
            if before_hash is not None:
                before_hash(prefix)
            if not check_key(key, row.key_hash):
                return None
            with self._lock:
                self._passed[prefix] = fast
        return Principal(row.scope, row.collection, row.prefix)

    def list(self) -> list[KeyInfo]:
        """Every key, oldest first, revoked ones included."""
        with self.catalog.transaction() as s:
            rows = s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)).all()
            return [KeyInfo(r.prefix, r.scope, r.collection, r.created_at, r.revoked) for r in rows]

    def revoke(self, prefix: str) -> None:
        """Revoke the key with this prefix; NotFoundError when there is none."""
        with self.catalog.transaction() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
            if row is None:
                raise NotFoundError(f"no API key with prefix {prefix!r}; `almanac keys list` shows them")
            row.revoked = True
        with self._lock:
            self._passed.pop(prefix, None)
        log.info("event=key_revoked prefix=%s", prefix)
