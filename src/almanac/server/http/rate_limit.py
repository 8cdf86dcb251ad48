"""Per-client budgets: token buckets for requests, generated tokens and failed key checks.

A client is an API key (its prefix) or, when no key exists, a client IP. Each bucket holds up to
`per_minute` units and refills at `per_minute / 60` a second: a client may burst a minute's allowance, then
goes at the steady rate. `take` refuses at once with OverloadedError (429 with Retry-After: the seconds until
the bucket holds enough again). `charge` takes after the fact (generated tokens are known only once the
answer is done) and may leave the bucket in debt; `require` then refuses until the debt is refilled.
`per_minute=0` turns a bucket set off. At most `max_clients` buckets are kept (least recently used dropped:
a dropped bucket was idle, so it had refilled anyway).

    >>> now = [0.0]
    >>> buckets = Buckets(2, "requests", clock=lambda: now[0])
    >>> buckets.take("alm_1a2b3c4d"); buckets.take("alm_1a2b3c4d")
    >>> try:
    ...     buckets.take("alm_1a2b3c4d")
    ... except OverloadedError as exc:
    ...     exc.retry_after
    30
    >>> now[0] = 30.0
    >>> buckets.take("alm_1a2b3c4d")
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from almanac.core.errors import OverloadedError
from almanac.core.settings import ServerSettings

log = logging.getLogger(__name__)

MAX_CLIENTS = 10_000  # buckets kept per set; an attacker cycling IPs costs memory up to here, no more
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a budget is charged to: `id` is ``key:PREFIX`` or ``ip:ADDRESS``; `scope` picks its limits."""

    id: str
    scope: str


class Buckets:
    """One token bucket per client, `per_minute` units each; thread-safe."""

    def __init__(
        self, per_minute: int, what: str, clock: Clock = time.monotonic, max_clients: int = MAX_CLIENTS
    ) -> None:
        self.per_minute, self.what, self.clock, self.max_clients = per_minute, what, clock, max_clients
        self._rate = per_minute / 60.0  # units refilled per second
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (level, when)
        self._lock = threading.Lock()

    def take(self, client: str, cost: float = 1.0) -> None:
        """Take `cost` units, or raise OverloadedError when the bucket holds fewer."""
        self._spend(client, cost, need=cost)

    def require(self, client: str, need: float = 1e-9) -> None:
        """Raise OverloadedError while the bucket holds less than `need` (default: in debt or at zero);
        takes nothing."""
        self._spend(client, 0.0, need=need)

    def charge(self, client: str, cost: float) -> None:
        """Take `cost` units whatever the level (down to one minute's worth of debt)."""
        self._spend(client, cost, need=-math.inf)

    def _spend(self, client: str, cost: float, need: float) -> None:
        if self.per_minute <= 0:
            return
        with self._lock:
            level = self._level(client)
            if level < need:
                wait = math.ceil((need - level) / self._rate - 1e-6)  # float noise is no second
                raise self._refusal(client, max(1, min(wait, 3600)))
            self._store(client, max(level - cost, -self.per_minute))

    def _level(self, client: str) -> float:
        now = self.clock()
        level, when = self._levels.get(client, (float(self.per_minute), now))
        return min(float(self.per_minute), level + (now - when) * self._rate)

    def _store(self, client: str, level: float) -> None:
        self._levels[client] = (level, self.clock())
        self._levels.move_to_end(client)
        while len(self._levels) > self.max_clients:
            self._levels.popitem(last=False)

    def _refusal(self, client: str, retry_after: int) -> OverloadedError:
        log.warning("event=rate_limited client=%s what=%s retry_after=%d", client, self.what, retry_after)
        return OverloadedError(
            f"rate limit: at most {self.per_minute} {self.what} per minute for {client}; "
            f"retry after {retry_after} s",
            retry_after,
        )


class ScopedBuckets:
    """A Buckets per key scope: the scope's own limit where one is set, else the default."""

    def __init__(self, per_minute: int, by_scope: Mapping[str, int], what: str, clock: Clock) -> None:
        self._default = Buckets(per_minute, what, clock)
        self._scoped = {scope: Buckets(n, what, clock) for scope, n in by_scope.items()}

    def of(self, scope: str) -> Buckets:
        """The buckets that count clients of `scope`."""
        return self._scoped.get(scope, self._default)

    def take(self, caller: Caller, cost: float = 1.0) -> None:
        """Take `cost` from the caller's bucket or raise OverloadedError."""
        self.of(caller.scope).take(caller.id, cost)

    def require(self, caller: Caller) -> None:
        """Raise OverloadedError while the caller's bucket is in debt."""
        self.of(caller.scope).require(caller.id)

    def charge(self, caller: Caller, cost: float) -> None:
        """Take `cost` after the fact (may leave debt)."""
        self.of(caller.scope).charge(caller.id, cost)


class RateLimits:
    """The server's budgets: requests and generated tokens per caller, failed key checks per prefix and IP."""

    def __init__(self, server: ServerSettings, clock: Clock = time.monotonic) -> None:
        self.requests = ScopedBuckets(
            server.rate_limit_per_minute, server.rate_limits_by_scope, "requests", clock
        )
        self.tokens = ScopedBuckets(
            server.token_limit_per_minute, server.token_limits_by_scope, "generated tokens", clock
        )
        self.auth_failures = Buckets(server.auth_failures_per_minute, "failed key checks", clock)

    def before_key_check(self, prefix: str, ip: str) -> None:
        """Raise OverloadedError when the prefix or the IP has failed too often (before running scrypt)."""
        self.auth_failures.require(f"prefix:{prefix}", need=1.0)  # room for one more failure
        self.auth_failures.require(f"ip:{ip}", need=1.0)

    def key_check_failed(self, prefix: str, ip: str) -> None:
        """Count a failed key check against the prefix and the IP."""
        self.auth_failures.charge(f"prefix:{prefix}", 1)
        self.auth_failures.charge(f"ip:{ip}", 1)
