"""Which LoRA adapter answers a request that names none: the collection's, else a default read per request
(so a promotion takes effect without a restart). `AdapterPolicy()` is the base model: no adapter at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


def _no_adapter() -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class AdapterPolicy:
    """Which adapter a request runs with when it names none: the collection's, else `default()`.

    `AdapterPolicy()` means the base model (what `almanac eval` calls "base").

        >>> AdapterPolicy(per_collection={"docs": "docs-v2"}).choose("docs", None)
        'docs-v2'
        >>> AdapterPolicy(lambda: "promoted").choose("other", "asked")
        'asked'
    """

    default: Callable[[], str | None] = _no_adapter
    per_collection: Mapping[str, str] = field(default_factory=dict)

    def choose(self, collection: str, requested: str | None) -> str | None:
        """The adapter asked for, else the collection's, else the default."""
        return requested or self.per_collection.get(collection) or self.default()
