"""A fair share of the one ingest worker between the keys that queue jobs.

The worker runs one job at a time. Without a policy, one key queueing a long job (a 40 MB HTML page, a
folder of thousands of files) blocks every other key's uploads until it ends. Two rules fix that:

- **pick**: of the queued jobs, run the oldest one of the owner served longest ago (an owner never served
  comes first), so owners take turns instead of queueing behind each other;
- **yield**: a job that has run for `slice_s` while another owner has a job queued stops between items and
  goes back to the queue. Ingest is idempotent (committed files are skipped as unchanged), so the job loses
  at most the file it was reading when it resumes on its owner's next turn.

    >>> share = FairShare(slice_s=30.0)
    >>> share.served("alm_a", at=100.0)
    >>> share.pick([("job_1", "alm_a"), ("job_2", "alm_b")])
    'job_2'
    >>> share.should_yield(started=100.0, now=131.0, others_waiting=True)
    True
"""

from __future__ import annotations

from collections.abc import Sequence

OPEN_OWNER = "open"  # the owner of jobs queued without an API key (a server with no keys)


class FairShare:
    """Which queued job runs next, and when a running one gives the worker up (`slice_s` <= 0: never)."""

    def __init__(self, slice_s: float) -> None:
        self.slice_s = slice_s
        self._last_served: dict[str, float] = {}

    def served(self, owner: str, at: float) -> None:
        """Record that `owner`'s job got the worker at `at` (a monotonic time)."""
        self._last_served[owner] = at

    def pick(self, queued: Sequence[tuple[str, str]]) -> str | None:
        """The job id to run from `queued` (job id, owner) pairs, oldest first; None when empty."""
        first_of: dict[str, str] = {}
        for job_id, owner in queued:
            first_of.setdefault(owner, job_id)
        if not first_of:
            return None
        owner = min(first_of, key=lambda o: self._last_served.get(o, float("-inf")))
        return first_of[owner]

    def should_yield(self, started: float, now: float, others_waiting: bool) -> bool:
        """True when the running job (started at `started`) has had its slice and another owner waits."""
        return self.slice_s > 0 and others_waiting and now - started >= self.slice_s
