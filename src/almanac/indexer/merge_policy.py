"""Which segments to merge next: a log-structured policy (Lucene's LogMergePolicy, simplified).

A segment's level is how many times `factor` its size is above the commit size; when `factor` neighbouring
segments share a level they are merged into one of the next level, so each vector is rewritten about
log_factor(n / commit) times over the life of a collection of n vectors, and a search visits
O(factor · log n) segments. A segment whose deleted share passes `deleted_ratio` is rewritten alone.

    >>> s = [Sized(f"s{i}", 100) for i in range(4)]
    >>> [x.name for x in pick_merge(s, {}, base=100, factor=3, deleted_ratio=0.5)]
    ['s0', 's1', 's2']
    >>> pick_merge([Sized("big", 900), Sized("s4", 100)], {}, base=100, factor=3, deleted_ratio=0.5)
    []
    >>> [x.name for x in pick_merge([Sized("big", 900)], {"big": 600}, 100, 3, 0.5)]
    ['big']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar


class HasSize(Protocol):
    """A segment as the policy sees it."""

    @property
    def name(self) -> str: ...

    @property
    def vector_count(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Sized:
    """A named size (for examples and tests)."""

    name: str
    vector_count: int


S = TypeVar("S", bound=HasSize)


def level(live: int, base: int, factor: int) -> int:
    """0 up to `factor` commits' worth of vectors, then one more per factor."""
    if live <= base:
        return 0
    return max(0, math.floor(math.log(live / base, factor)))


def pick_merge(
    segments: Sequence[S], deleted: Mapping[str, int], base: int, factor: int, deleted_ratio: float
) -> list[S]:
    """Neighbouring segments (in id order) to merge next, or [] when none need it."""
    for segment in segments:
        gone = deleted.get(segment.name, 0)
        if segment.vector_count and gone / segment.vector_count > deleted_ratio:
            return [segment]
    levels = [level(s.vector_count - deleted.get(s.name, 0), max(1, base), factor) for s in segments]
    for start in range(len(segments) - factor + 1):
        if len(set(levels[start : start + factor])) == 1:
            return list(segments[start : start + factor])
    return []
