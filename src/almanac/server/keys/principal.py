"""Who is calling: a principal is an API key's scope and collection binding.

Scopes are ordered read < write < admin: a key satisfies every scope up to its own. A key may be bound to
one collection; `Principal.check_collection` refuses any other. With no key in the store every request is
the unbound admin `OPEN` (the server then binds to loopback only, enforced by `almanac serve`).

    >>> Principal("write", None, "alm_1a2b3c4d").allows("read")
    True
    >>> Principal("read", "docs", "alm_1a2b3c4d").collection_or("default")
    'docs'
"""

from __future__ import annotations

from dataclasses import dataclass

from almanac.core.errors import ForbiddenError

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
