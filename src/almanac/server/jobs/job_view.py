"""A job as the API shows it: state, progress counters (with rate and ETA), per-item errors, report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from almanac.core.catalog_schema import JobRow

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as the API shows it."""

    id: str
    kind: str
    state: str
    collection: str | None
    progress: dict[str, Any]
    errors: list[dict[str, str]]
    report: dict[str, Any] | None
    message: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: JobRow) -> JobView:
        """The view of a catalog row."""
        stored = dict(row.progress or {})
        report, message = stored.pop("report", None), stored.pop("message", None)
        progress = {"items": stored.get("items", 0), "chunks": stored.get("chunks", 0)}
        progress |= {key: stored.get(key) for key in ("total", "chunks_per_s", "eta_s")}
        collection = (row.spec or {}).get("collection")
        return cls(
            row.id,
            row.kind,
            row.state,
            collection,
            progress,
            list(row.errors or []),
            report,
            message,
            row.created_at,
            row.updated_at,
        )

    @property
    def done(self) -> bool:
        """True once the job succeeded or failed."""
        return self.state in FINAL_STATES

    def as_json(self) -> dict[str, Any]:
        """Plain JSON for responses."""
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "collection": self.collection,
            "progress": self.progress,
            "errors": self.errors,
            "report": self.report,
            "message": self.message,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
