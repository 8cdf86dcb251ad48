"""The scale benchmark's server side: cold start, memory, search latency, and how soon a change is served.

    with ColdServer(home, log, env, probe="Norway Krone") as server:   # start timed to the first search
        server.cold_start_s, rss_mb(server.pid)
        watch_change(server.url, query, checks, command, env)   # a writer child runs while we search

Cold start: from spawning `almanac serve` to the first /v1/search that answers with results, polled every
50 ms (the search does not wait for /readyz; the warm-up loads the chat model beside it). Visibility: the
change runs in a child process while this one searches every 20 ms; each check's first success is taken
at the moment its response arrived, and compared with the child's commit time (both time.time()).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from serve_server import LiveServer, ServerError

Results = list[dict[str, Any]]
Check = Callable[[Results], bool]


def search(client: httpx.Client, query: str, top_k: int = 10) -> Results:
    """One /v1/search; its results."""
    response = client.post("/v1/search", json={"query": query, "top_k": top_k})
    response.raise_for_status()
    return list(response.json()["results"])


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (VmRSS, VmHWM of /proc/PID/status), MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: int(fields[key].split()[0]) / 1024 for name, key in (("rss", "VmRSS"), ("peak", "VmHWM"))}


class ColdServer(LiveServer):
    """A LiveServer whose start is timed to the first search that returns results, then waits for /readyz."""

    def __init__(self, home: Path, log_path: Path, extra_env: dict[str, str], probe: str) -> None:
        super().__init__(home, log_path, extra_env)
        self.probe = probe
        self.cold_start_s = 0.0

    def start(self) -> None:
        """Spawn, poll /v1/search every 50 ms, then /readyz."""
        started = self.spawn()
        with httpx.Client(base_url=self.url, timeout=600) as client:
            while not self._answered(client):
                if self.process.poll() is not None:
                    raise ServerError(
                        f"the server exited with {self.process.returncode}; see {self.log_path}"
                    )
                if time.perf_counter() - started > self.ready_s:
                    self.stop()
                    raise ServerError(f"no search answered after {self.ready_s:.0f} s; see {self.log_path}")
                time.sleep(0.05)
        self.cold_start_s = time.perf_counter() - started
        while not self._ready():
            time.sleep(0.1)
        self.ready_seconds = time.perf_counter() - started

    def _answered(self, client: httpx.Client) -> bool:
        try:
            return bool(search(client, self.probe))
        except httpx.HTTPError:
            return False


def empty_server_rss(home: Path, log_path: Path, extra_env: dict[str, str]) -> dict[str, float]:
    """Memory of a ready server on a home without any collection: the models and the process alone."""
    with LiveServer(home, log_path, extra_env) as server:
        return rss_mb(server.pid)


def watch_change(
    url: str,
    query: str,
    checks: dict[str, Check],
    command: list[str],
    env: dict[str, str],
    timeout_s: float = 300,
) -> dict[str, Any]:
    """Run the change child while searching `query` every 20 ms until it has exited and every check held
    (or `timeout_s`); returns the wall-clock time each check first held, the polls made, the errors met."""
    first: dict[str, float | None] = dict.fromkeys(checks)
    polls, errors, deadline = 0, 0, time.time() + timeout_s
    with httpx.Client(base_url=url, timeout=120) as client:
        child = subprocess.Popen(command, env=env)
        while time.time() < deadline:
            try:
                results = search(client, query)
            except httpx.HTTPError:
                errors += 1
            else:
                arrived = time.time()
                for name, check in checks.items():
                    if first[name] is None and check(results):
                        first[name] = arrived
            polls += 1
            if child.poll() is not None and all(t is not None for t in first.values()):
                break
            time.sleep(0.02)
        code = child.wait()
    if code != 0:
        raise RuntimeError(f"the change child exited with {code}: {' '.join(command)}")
    return {"first_seen_at": first, "polls": polls, "errors": errors}


class TokenSeen:
    """True when a result's text holds `token` and its chunk id was not among `before` (an updated row gets
    new chunk ids, so a live re-read of the old chunk does not count)."""

    def __init__(self, token: str, before: set[int] | None = None) -> None:
        self.token, self.before = token.lower(), before or set()

    def __call__(self, results: Results) -> bool:
        token = self.token
        return any(token in r["text"].lower() and r["id"] not in self.before for r in results)


class ChunkGone:
    """True when chunk `chunk_id` is no longer returned; with `full`, also only once the response holds
    `full` results again. The server re-reads row hits from the source and drops deleted rows after the
    index search, so while the index still holds the row one of the top-k slots is dropped (k-1 results);
    a full response without the chunk means the index itself no longer returns it."""

    def __init__(self, chunk_id: int, full: int = 0) -> None:
        self.chunk_id, self.full = chunk_id, full

    def __call__(self, results: Results) -> bool:
        return all(r["id"] != self.chunk_id for r in results) and len(results) >= self.full


def child_command(script: Path, mode: str, *args: str) -> list[str]:
    """`python bench/scale_child.py MODE ARGS...` with this interpreter."""
    return [sys.executable, str(script), mode, *args]
