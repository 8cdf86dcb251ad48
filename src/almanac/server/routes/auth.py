"""API-key authentication as FastAPI dependencies: `ReadKey`, `WriteKey`, `AdminKey`.

Clients send ``Authorization: Bearer KEY``. With no key in the store every request is the unbound admin
`OPEN` (keys/principal.py). Once a key exists, even revoked, every request needs a valid key.

The same dependency enforces the server's rate limits (http/rate_limit.py) in one place: failed key checks
per key prefix and per client IP (past the limit: 429 before any scrypt check), then requests per caller
(the key, or the client IP when no key exists). The caller is left on `request.state` for `caller_of`, which
the answering routes put on their `Ask` (fair queueing and the token budget).

    >>> bearer_token_of("Bearer alm_1a2b3c4d_secret")
    'alm_1a2b3c4d_secret'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Protocol

from fastapi import Depends, Request

from almanac.core.errors import AuthError, ForbiddenError
from almanac.server.http.rate_limit import Caller, RateLimits
from almanac.server.keys.principal import OPEN, SCOPES, Principal
from almanac.server.routes.deps import get_services


class KeyVerifier(Protocol):
    """What authentication needs from the key store."""

    def has_keys(self) -> bool:
        """True once any key was created (revoked or not)."""
        ...

    def verify(self, key: str, before_hash: Callable[[str], None] | None = None) -> Principal | None:
        """The key's principal, or None for an unknown, wrong or revoked key; `before_hash(prefix)` runs
        before a slow check."""
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


def client_ip(request: Request) -> str:
    """The peer's address (a proxy in front shows as one client: give it keys)."""
    return request.client.host if request.client else "unknown"


def caller_of(request: Request) -> Caller | None:
    """Who the authenticated request is, as set by the key dependency (None outside it)."""
    caller: Caller | None = getattr(request.state, "caller", None)
    return caller


def authenticate(
    keys: KeyVerifier, token: str | None, scope: str, limits: RateLimits | None = None, ip: str = "unknown"
) -> Principal:
    """The principal for `token`, checked against `scope`; AuthError (401) or ForbiddenError (403), and
    OverloadedError (429) once the prefix or `ip` failed too often (the key is then not checked)."""
    if not keys.has_keys():
        return OPEN
    if token is None:
        raise AuthError("missing API key; send the header `Authorization: Bearer KEY`")
    guard = (lambda prefix: limits.before_key_check(prefix, ip)) if limits else None
    principal = keys.verify(token, guard)
    if principal is None:
        if limits is not None:
            limits.key_check_failed(token[:12], ip)
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
        services = get_services(request)
        limits, ip = services.answering.limits, client_ip(request)
        principal = authenticate(services.keys, bearer_token(request), scope, limits, ip)
        who = f"key:{principal.key_prefix}" if principal.key_prefix else f"ip:{ip}"
        request.state.caller = caller = Caller(who, principal.scope)
        limits.requests.take(caller)
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


ReadKey = Annotated[Principal, Depends(require_scope("read"))]
WriteKey = Annotated[Principal, Depends(require_scope("write"))]
AdminKey = Annotated[Principal, Depends(require_scope("admin"))]
