"""API-key authentication as FastAPI dependencies: `ReadKey`, `WriteKey`, `AdminKey`.

Clients send ``Authorization: Bearer KEY``. With no key in the store every request is the unbound admin
`OPEN` (keys/principal.py). Once a key exists, even revoked, every request needs a valid key.

    >>> bearer_token_of("Bearer alm_1a2b3c4d_secret")
    'alm_1a2b3c4d_secret'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Protocol

from fastapi import Depends, Request

from almanac.core.errors import AuthError, ForbiddenError
from almanac.server.keys.principal import OPEN, SCOPES, Principal
from almanac.server.routes.deps import get_services


class KeyVerifier(Protocol):
    """What authentication needs from the key store."""

    def has_keys(self) -> bool:
        """True once any key was created (revoked or not)."""
        ...

    def verify(self, key: str) -> Principal | None:
        """The key's principal, or None for an unknown, wrong or revoked key."""
        ...


def bearer_token(request: Request) -> str | None:
    """The token of the request's ``Authorization: Bearer`` header, or None when there is none."""
    return bearer_token_of(request.headers.get("authorization", ""))


def bearer_token_of(header: str) -> str | None:
    """The token of an ``Authorization`` header value, or None when it is not a bearer token."""
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
        return authenticate(get_services(request).keys, bearer_token(request), scope)

    dependency.__name__ = f"require_{scope}"
    return dependency


ReadKey = Annotated[Principal, Depends(require_scope("read"))]
WriteKey = Annotated[Principal, Depends(require_scope("write"))]
AdminKey = Annotated[Principal, Depends(require_scope("admin"))]
