"""What an ingest reports: counts, failures with reasons, and a progress hook for bars and job state."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol


class StopRun(Exception):  # noqa: N818 (a signal, not a failure)
    """Raised by a Progress hook to end an ingest early (a server stopping, a job cancelled or yielding its
    turn). The indexer first commits what it has read, so the next run starts after it, then re-raises."""


class Progress(Protocol):
    """Receives progress from the indexer (a tqdm bar in the CLI, job state in the server)."""

    def start(self, total_items: int | None) -> None:
        """Work begins; `total_items` files or rows when known."""
        ...

    def advance(self, items: int = 0, chunks: int = 0) -> None:
        """More items read and chunks committed; may raise StopRun (between items)."""
        ...


class NullProgress:
    """Progress that goes nowhere."""

    def start(self, total_items: int | None) -> None:
        """Ignore."""

    def advance(self, items: int = 0, chunks: int = 0) -> None:
        """Ignore."""


@dataclass
class IngestReport:
    """Summary of one ingest: what changed, what failed and why."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unsupported: Counter[str] = field(default_factory=Counter)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_committed: int = 0
    version: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when nothing failed (unsupported types are listed, not failures)."""
        return not self.failed

    def as_json(self) -> dict[str, object]:
        """Plain-JSON form for --json output and job state."""
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": [{"source": s, "reason": r} for s, r in self.failed],
            "unsupported": dict(self.unsupported),
            "chunks_embedded": self.chunks_embedded,
            "chunks_reused": self.chunks_reused,
            "chunks_committed": self.chunks_committed,
            "version": self.version,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """One line for humans."""
        rate = self.chunks_committed / self.seconds if self.seconds > 0 else 0.0
        line = (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"removed {self.removed}, failed {len(self.failed)}; {self.chunks_committed} chunks "
            f"({self.chunks_embedded} embedded, {self.chunks_reused} reused) in {self.seconds:.1f}s "
            f"({rate:.1f} chunks/s); index v{self.version}"
        )
        if self.unsupported:
            kinds = ", ".join(f"{k or '(none)'}: {n}" for k, n in sorted(self.unsupported.items()))
            line += f"\nskipped unsupported file types: {kinds}"
        return line
