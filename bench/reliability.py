"""Soak: a bounded mixed workload against a live `almanac serve` on 127.0.0.1, then the invariants checked.

    .venv/bin/python bench/reliability.py --minutes 20            # the figure in BENCHMARKS.md
    .venv/bin/python bench/reliability.py --minutes 1             # a smoke run

Three keys (write keys bound to collections `a` and `b`, and an unbound admin key) drive, at the same time:
uploads (new documents, replacements, and deletes of their own documents), folder jobs, questions answered
whole and streamed, and searches. Every change the server acknowledged is written to a shadow record. At the
end (jobs drained, server stopped) the bench checks:
- the catalog holds exactly the shadow's documents per collection (none lost, none duplicated, none left
  over from a delete), and `almanac check` finds catalog and index in agreement;
- the server's RSS grew by less than 10% from the end of the warm-up (first 20% of the run) to the end;
- p99 latency per fifth of the run stays stable (last fifth within 2x the first);
- no 5xx at all; 429s (the configured per-key rate limit) carry Retry-After.
Generation uses the embedded SmolLM2 (the small reader) so that the run measures the server, not the model.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_server import ALMANAC, LiveServer, server_env

WORDS = [
    "otter",
    "clock",
    "river",
    "ferry",
    "pier",
    "harbour",
    "signal",
    "lantern",
    "copper",
    "meadow",
    "quarry",
    "beacon",
]


@dataclass
class Shadow:
    """What the server acknowledged: collection -> {file name: document id}."""

    docs: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Calls:
    """Every request's (time since start, route, status, seconds)."""

    rows: list[tuple[float, str, int, float]] = field(default_factory=list)
    retry_after_missing: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, started: float, route: str, response: httpx.Response, seconds: float) -> None:
        with self.lock:
            self.rows.append((started, route, response.status_code, seconds))
            if response.status_code in (429, 503) and "retry-after" not in response.headers:
                self.retry_after_missing += 1


def make_key(home: Path, scope: str, collection: str | None) -> str:
    args = [str(ALMANAC), "keys", "create", "--scope", scope] + (
        ["--collection", collection] if collection else []
    )
    out = subprocess.run(args, env=server_env(home), capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0].strip()


def document(rng: random.Random, n: int) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(40, 160)))
    return (
        f"# Note {n}\n\nThe {rng.choice(WORDS)} number {n} is kept at pier {rng.randrange(999)}.\n\n{body}\n"
    )


class Workload:
    """The mixed traffic of one run."""

    def __init__(self, url: str, keys: dict[str, str], home: Path, seconds: float, seed: int) -> None:
        self.url, self.keys, self.home, self.seconds = url, keys, home, seconds
        self.shadow, self.calls = Shadow(), Calls()
        self.start = time.monotonic()
        self.rng = random.Random(seed)
        self.errors: list[str] = []

    def _call(
        self, client: httpx.Client, route: str, method: str, path: str, **kwargs: object
    ) -> httpx.Response:
        started = time.monotonic()
        response = client.request(method, self.url + path, **kwargs)  # type: ignore[arg-type]
        self.calls.add(started - self.start, route, response, time.monotonic() - started)
        return response

    def _running(self) -> bool:
        return time.monotonic() - self.start < self.seconds

    def uploader(self, collection: str, seed: int) -> None:
        rng, n = random.Random(seed), 0
        headers = {"Authorization": f"Bearer {self.keys[collection]}"}
        with httpx.Client(headers=headers, timeout=120) as client:
            while self._running():
                mine = list(self.shadow.docs[collection].items())
                if mine and rng.random() < 0.25:
                    name, doc_id = rng.choice(mine)
                    response = self._call(client, "delete", "DELETE", f"/v1/documents/{doc_id}?wait=60")
                    if response.status_code == 200:
                        with self.shadow.lock:
                            self.shadow.docs[collection].pop(name, None)
                else:
                    n += 1
                    name = (
                        f"{collection}-{seed}-{n if rng.random() > 0.2 or n < 3 else rng.randrange(1, n)}.md"
                    )
                    files = {"file": (name, document(rng, n).encode())}
                    response = self._call(
                        client,
                        "upload",
                        "POST",
                        "/v1/documents",
                        files=files,
                        data={"collection": collection},
                    )
                    if response.status_code == 201:
                        with self.shadow.lock:
                            for ref in response.json()["documents"]:
                                self.shadow.docs[collection][Path(ref["source"]).name] = ref["id"]
                time.sleep(rng.uniform(0.2, 1.0))

    def asker(self, collection: str, seed: int) -> None:
        rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {self.keys[collection]}"}
        with httpx.Client(headers=headers, timeout=120) as client:
            while self._running():
                question = f"Which pier keeps the {rng.choice(WORDS)} number {rng.randrange(1, 40)}?"
                body = {"question": question, "collection": collection, "max_tokens": 32}
                kind = rng.choice(["query", "stream", "search"])
                if kind == "search":
                    self._call(
                        client,
                        "search",
                        "POST",
                        "/v1/search",
                        json={"query": question, "collection": collection},
                    )
                elif kind == "query":
                    self._call(client, "query", "POST", "/v1/query", json=body)
                else:
                    started = time.monotonic()
                    with client.stream(
                        "POST", self.url + "/v1/query", json=body | {"stream": True}
                    ) as response:
                        for _ in response.iter_lines():
                            pass
                    self.calls.add(started - self.start, "stream", response, time.monotonic() - started)
                time.sleep(rng.uniform(0.0, 0.5))

    def folder_jobs(self, seed: int) -> None:
        rng, n = random.Random(seed), 0
        headers = {"Authorization": f"Bearer {self.keys['admin']}"}
        with httpx.Client(headers=headers, timeout=60) as client:
            while self._running():
                n += 1
                folder = self.home / "inbox" / f"batch{n}"
                folder.mkdir(parents=True)
                for i in range(5):
                    (folder / f"job{n}-{i}.md").write_text(document(rng, 1000 * n + i))
                body = {"kind": "folder", "path": f"batch{n}", "collection": "jobs"}
                response = self._call(client, "job", "POST", "/v1/jobs", json=body)
                if response.status_code == 202:
                    with self.shadow.lock:
                        self.shadow.docs["jobs"].update({f"job{n}-{i}.md": 0 for i in range(5)})
                time.sleep(rng.uniform(5, 15))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def catalog_documents(url: str, key: str, collection: str) -> dict[str, int]:
    found: dict[str, int] = {}
    offset: int | None = 0
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        while offset is not None:
            page = client.get(
                f"{url}/v1/documents", params={"collection": collection, "offset": offset, "limit": 500}
            )
            if page.status_code == 404:
                return found
            body = page.json()
            for doc in body["documents"]:
                name = Path(doc["source"]).name
                found[name] = found.get(name, 0) + 1
            offset = body["next_offset"]
    return found


def wait_idle(url: str, key: str, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        while time.monotonic() < deadline:
            jobs = client.get(f"{url}/v1/jobs", params={"limit": 500}).json()["jobs"]
            if all(j["state"] in ("succeeded", "failed", "cancelled") for j in jobs):
                return
            time.sleep(1)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else (values[0] if values else 0.0)


def report(
    work: Workload, rss: list[tuple[float, float]], seconds: float, mismatches: list[str], check: str
) -> dict[str, object]:
    rows = work.calls.rows
    statuses: dict[int, int] = defaultdict(int)
    for *_, status, _ in rows:
        statuses[status] += 1
    fifths = [
        [s for t, _, code, s in rows if code < 400 and i * seconds / 5 <= t < (i + 1) * seconds / 5]
        for i in range(5)
    ]
    warm = [mb for t, mb in rss if t >= seconds * 0.2]
    growth = (rss[-1][1] - warm[0]) / warm[0] if warm else 0.0
    return {
        "seconds": round(seconds),
        "requests": len(rows),
        "by_route": {
            r: sum(1 for _, route, *_ in rows if route == r) for r in sorted({row[1] for row in rows})
        },
        "statuses": dict(sorted(statuses.items())),
        "server_errors_5xx": sum(n for code, n in statuses.items() if code >= 500),
        "retry_after_missing": work.calls.retry_after_missing,
        "p99_s_by_fifth": [round(p99(f), 3) for f in fifths],
        "rss_mb_after_warmup": round(warm[0], 1) if warm else None,
        "rss_mb_end": round(rss[-1][1], 1) if rss else None,
        "rss_growth": round(growth, 3),
        "documents_expected": {c: len(d) for c, d in work.shadow.docs.items()},
        "document_mismatches": mismatches,
        "almanac_check": check,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/reliability.json"))
    args = parser.parse_args()
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="almanac-soak-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        keys = {
            "a": make_key(home, "write", "a"),
            "b": make_key(home, "write", "b"),
            "admin": make_key(home, "admin", None),
        }
        keys["jobs"] = keys["admin"]
        env = {
            "ALMANAC_EMBEDDING__MODEL": "hashing",
            "ALMANAC_CHAT__MODEL": "smollm2",
            "ALMANAC_SERVER__RATE_LIMIT_PER_MINUTE": "600",
            "ALMANAC_SERVER__JOB_SLICE_S": "10",
        }
        with LiveServer(home, Path(tmp) / "server.log", extra_env=env) as server:
            work = Workload(server.url, keys, home, seconds, args.seed)
            threads = [
                threading.Thread(target=work.uploader, args=("a", 1)),
                threading.Thread(target=work.uploader, args=("b", 2)),
                threading.Thread(target=work.asker, args=("a", 3)),
                threading.Thread(target=work.asker, args=("b", 4)),
                threading.Thread(target=work.folder_jobs, args=(5,)),
            ]
            for thread in threads:
                thread.start()
            rss: list[tuple[float, float]] = []
            while any(t.is_alive() for t in threads):
                rss.append((time.monotonic() - work.start, rss_mb(server.pid)))
                time.sleep(5)
            wait_idle(server.url, keys["admin"])
            mismatches = []
            for collection, expected in work.shadow.docs.items():
                found = catalog_documents(server.url, keys["admin"], collection)
                lost = sorted(set(expected) - set(found))
                extra = sorted(set(found) - set(expected))
                doubled = sorted(name for name, count in found.items() if count > 1)
                if lost or extra or doubled:
                    mismatches.append(
                        f"{collection}: lost {lost[:5]} extra {extra[:5]} duplicated {doubled[:5]}"
                    )
        check = subprocess.run([str(ALMANAC), "check"], env=server_env(home), capture_output=True, text=True)
        result = report(work, rss, seconds, mismatches, (check.stdout + check.stderr).strip())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
