"""Who is calling: a principal is an API key's scope and collection binding.

Scopes are ordered read < write < admin: a key satisfies every scope up to its own. A key may be bound to
one collection; `Principal.resolve_collection` picks a request's collection once, before any lookup, and
refuses any other with one 403 that names neither the collection asked for nor whether it exists (so a
bound key learns nothing of other tenants). With no key in the store every request is
the unbound admin `OPEN` (the server then binds to loopback only, enforced by `almanac serve`).

    >>> Principal("write", None, "alm_1a2b3c4d").allows("read")
    True
    >>> Principal("read", "docs", "alm_1a2b3c4d").collection_or("default")
    'docs'
    >>> Principal("read", "docs", "alm_1a2b3c4d").resolve_collection(None, "default")
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

    @property
    def owner(self) -> str:
        """Who owns the jobs this principal queues (its key prefix; "open" without keys)."""
        return self.key_prefix or "open"

    @property
    def bound(self) -> bool:
        """True when the key is bound to one collection."""
        return self.collection is not None

    def check_collection(self, name: str) -> None:
        """Raise ForbiddenError when the key is bound to a collection other than `name`.

        The message is the same whatever `name` is, known or not, and does not repeat it.
        """
        if self.collection is not None and self.collection != name:
            raise ForbiddenError(
                f"key {self.key_prefix} is bound to collection {self.collection!r}; ask for that collection "
                f"(or name none) or use a key for the other one "
                f"(`almanac keys create --scope {self.scope} --collection NAME`)"
            )

    def resolve_collection(self, asked: str | None, default: str) -> str:
        """The collection a request works on: `asked`, else the key's own, else `default`.

        Routes call this first, before any lookup, so that a bound key asking for another collection gets
        the same 403 whether or not that collection exists.
        """
        name = asked or self.collection_or(default)
        self.check_collection(name)
        return name

    def collection_or(self, default: str) -> str:
        """The collection a request without one means: the key's own, else `default`."""
        return self.collection or default


OPEN = Principal("admin", None, None)  # what every request is when no key exists
