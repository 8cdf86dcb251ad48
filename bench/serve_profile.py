"""Where a live server spends its time during a search level: py-spy attached to the server process.

    shares = profiled_level(server, payloads, concurrency=32, requests=400, out=Path("out/profile.txt"))

py-spy (`pip install py-spy` into .venv; not a project dependency) samples every thread of the server,
native frames included, into a raw collapsed-stack file. `busy_shares` drops samples of threads that wait
(locks, queues, epoll; OpenMP spin-waits inside MKL/FAISS count as busy: they burn a core) and attributes
each remaining sample to the deepest frame that names a part of the request path. The profiled level is an
extra one: py-spy pauses the process to sample, so its latencies are not the benchmark's figures.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from serve_load import run_level
from serve_server import LiveServer

RATE_HZ = 50
_WAITS = (
    "pthread_cond_timedwait",
    "pthread_cond_wait",
    "Condition.wait",
    "Queue.get",
    "epoll",  # epoll_wait, epoll_pwait: the event loop waiting for I/O
    "lock_PyThread_acquire_lock",
    "PyThread_acquire_lock_timed",
    "Event.wait",
    "select",
)
_SPIN = ("GOMP", "gomp", "mkl_", "omp_")
# (label, text in a frame), tried on each frame from the leaf upwards; the first frame that matches wins.
_PARTS = (
    ("query embedding (MiniLM, torch)", "SentenceTransformerEmbedder.embed"),
    ("FAISS search", "FaissIndex.search"),
    ("BM25 search", "LexicalIndex.search"),
    ("fusion", "reciprocal_rank_fusion"),
    ("catalog: chunks_by_ids", "Catalog.chunks_by_ids"),
    ("catalog: version check per search", "Retriever._current"),
    ("auth: has_keys query per request", "KeyStore.has_keys"),
    ("row refresh", "SourceRegistry.refresh"),
    ("micro-batcher", "SearchBatcher"),
    ("FastAPI dependencies and validation", "solve_dependencies"),
    ("response serialization", "serialize_response"),
    ("middleware", "Middleware.__call__"),
    ("HTTP parsing (httptools)", "httptools"),
    ("thread hand-off (anyio)", "run_sync_in_worker_thread"),
    ("event loop", "run_forever"),
)


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, else on PATH, else None."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.is_file() else shutil.which("py-spy")


def _part(frames: Sequence[str]) -> str:
    for frame in reversed(frames):
        for label, marker in _PARTS:
            if marker in frame:
                return label
    return "other"


def busy_shares(raw: Path) -> dict[str, Any]:
    """Busy samples per part of the request path, as shares of all busy samples."""
    busy: Counter[str] = Counter()
    waiting = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        leaf = ";".join(frames[-4:])
        if any(w in leaf for w in _WAITS) and not any(s in stack for s in _SPIN):
            waiting += int(count)
            continue
        busy[_part(frames)] += int(count)
    total = sum(busy.values()) or 1
    shares = {part: round(n / total, 4) for part, n in busy.most_common()}
    return {"busy_samples": sum(busy.values()), "waiting_samples": waiting, "shares": shares}


def profiled_level(
    server: LiveServer, payloads: Sequence[dict[str, Any]], concurrency: int, requests: int, out: Path
) -> dict[str, Any] | None:
    """One extra /v1/search level with py-spy recording the server; None without py-spy."""
    executable = py_spy()
    if executable is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [executable, "record", "-p", str(server.pid), "-r", str(RATE_HZ), "-d", "600"]
    command += ["--threads", "--native", "--format", "raw", "-o", str(out)]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        level = run_level(server.url, "/v1/search", payloads, concurrency, requests)
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes the file when interrupted
        spy.wait(120)
    if not out.is_file():
        return {"concurrency": concurrency, "error": "py-spy wrote no profile (ptrace not allowed?)"}
    return {"concurrency": concurrency, "profile": str(out), "level": level, **busy_shares(out)}


def _count_batches(
    executable: str, pid: int, dumps: int, every_s: float, found: list[dict[str, int]]
) -> None:
    time.sleep(every_s)  # let the level reach its steady state
    for _ in range(dumps):
        done = subprocess.run(
            [executable, "dump", "-p", str(pid)], capture_output=True, text=True, check=False
        )
        threads = done.stdout.split("\nThread ")
        found.append(
            {
                "in_search_many": sum("search_many" in t for t in threads),
                "in_embed": sum("SentenceTransformerEmbedder.embed" in t for t in threads),
                "in_faiss": sum("FaissIndex.search" in t for t in threads),
            }
        )
        time.sleep(every_s)


def batch_concurrency(
    server: LiveServer, payloads: Sequence[dict[str, Any]], concurrency: int, requests: int, dumps: int = 8
) -> dict[str, Any] | None:
    """An extra level during which `py-spy dump` snapshots count the threads inside Retriever.search_many
    (micro-batches running at once) and inside the embedder; None without py-spy."""
    executable = py_spy()
    if executable is None:
        return None
    found: list[dict[str, int]] = []
    counter = threading.Thread(target=_count_batches, args=(executable, server.pid, dumps, 1.0, found))
    counter.start()
    level = run_level(server.url, "/v1/search", payloads, concurrency, requests)
    counter.join()
    return {"concurrency": concurrency, "snapshots": found, "level": level}


def reshare(report_path: Path) -> None:
    """Recompute the shares of every profile recorded in a serve.json from its raw file (after a change
    to the attribution rules above), and rewrite the JSON."""
    report = json.loads(report_path.read_text())
    servings = [report.get("corpus_serving") or {}, *report.get("synthetic_serving", [])]
    for prof in (p for s in servings for p in s.get("profiles", [])):
        if Path(prof.get("profile", "")).is_file():
            prof.update(busy_shares(Path(prof["profile"])))
    report_path.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    reshare(Path(sys.argv[1]))  # python bench/serve_profile.py bench/out/serve.json
