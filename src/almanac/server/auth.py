"""API-key authentication as FastAPI dependencies: `ReadKey`, `WriteKey`, `AdminKey`.

Scopes are ordered read < write < admin: a key satisfies every scope up to its own. A key may be bound to
one collection; `Principal.check_collection` refuses any other. Clients send ``Authorization: Bearer KEY``.
With no key in the store every request is allowed as an unbound admin: the server then binds to loopback
only (enforced by `almanac serve`). Once a key exists, even revoked, every request needs a valid key.

    >>> Principal("write", None, "alm_1a2b3c4d").allows("read")
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Request

from almanac.core.errors import AuthError, ForbiddenError

SCOPES: tuple[str, ...] = ("read", "write", "admin")  # in order of power


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's scope, the collection it is bound to (None: any), its listing prefix."""

    scope: str
    collection: str | None
    key_prefix: str | None

    def allows(self, scope: str) -> bool:
        """True when this principal's scope is at least `scope`."""
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    def check_collection(self, name: str) -> None:
        """Raise ForbiddenError when the key is bound to a collection other than `name`."""
        if self.collection is not None and self.collection != name:
            raise ForbiddenError(
                f"key {self.key_prefix} is bound to collection {self.collection!r} and cannot use {name!r}; "
                f"use a key for {name!r} (`almanac keys create --scope {self.scope} --collection {name}`)"
            )

    def collection_or(self, default: str) -> str:
        """The collection a request without one means: the key's own, else `default`."""
        return self.collection or default


OPEN = Principal("admin", None, None)  # what every request is when no key exists


class KeyVerifier(Protocol):
    """What authentication needs from the key store."""

    def has_keys(self) -> bool:
        """True once any key was created (revoked or not)."""
        ...

    def verify(self, key: str) -> Principal | None:
        """The key's principal, or None for an unknown, wrong or revoked key."""
        ...


def _key_store(request: Request) -> KeyVerifier:
    # Imported here: deps -> services -> key_store -> auth would otherwise be an import cycle.
    from almanac.server.deps import get_services

    return get_services(request).keys


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None when there is none."""
    header = request.headers.get("authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticate(keys: KeyVerifier, token: str | None, scope: str) -> Principal:
    """The principal for `token`, checked against `scope`; AuthError (401) or ForbiddenError (403)."""
    if not keys.has_keys():
        return OPEN
    if token is None:
        raise AuthError("missing API key; send the header `Authorization: Bearer KEY`")
    principal = keys.verify(token)
    if principal is None:
        raise AuthError("unknown or revoked API key; `almanac keys list` shows the valid key prefixes")
    if not principal.allows(scope):
        raise ForbiddenError(
            f"key {principal.key_prefix} has scope {principal.scope!r} but this call needs {scope!r}; "
            f"use a key created with `almanac keys create --scope {scope}`"
        )
    return principal


def require_scope(scope: str) -> Callable[[Request], Principal]:
    """A dependency that authenticates the request and requires `scope` (read, write or admin)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; use one of {SCOPES}")

    # A plain def: FastAPI runs it in the threadpool, so the key-store query never blocks the loop.
    def dependency(request: Request) -> Principal:
        return authenticate(_key_store(request), bearer_token(request), scope)

    dependency.__name__ = f"require_{scope}"
    return dependency


ReadKey = Annotated[Principal, Depends(require_scope("read"))]
WriteKey = Annotated[Principal, Depends(require_scope("write"))]
AdminKey = Annotated[Principal, Depends(require_scope("admin"))]
