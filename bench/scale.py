"""Scale benchmark: ingest N table rows and serve them; the segmented index beside the format before it.

Each configuration gets its own ALMANAC_HOME under bench/data/scale/runs/ and the hashing embedder (the
storage is measured, not the encoder); every step runs in child processes:
  1. ingest the `shipments` table (bench/scale_data.py, pycountry names) with Indexer.ingest_tables:
     rows/s overall, over the first 10% and over the last 10% of rows (the final commit and merges count);
  2. recall@10 of the index as published vs exact numpy search, and its segments (segmented format only);
  3. `almanac serve` on the home: cold start to the first search, RSS, /v1/search p50/p99 with 1 and 32
     clients (queries from the table's vocabulary; default settings, chat model SmolLM2 from a local folder);
  4. while that server runs, a writer child updates 1 row, deletes 1 row, adds 1 document: publish time
     (the O(N) scan apart from the commit) and the delay from its commit to the first search that shows it.
"before" is commit 0a1cf5e (one whole-collection FAISS file per version, BM25 rebuilt by the server for
each version), run from a git worktree at bench/data/scale/before-src with this interpreter.

    .venv/bin/python bench/scale.py                      # 1M rows + 100k before/after; bench/out/scale.json
    .venv/bin/python bench/scale.py --quick --skip-before # smoke run: 20k and 10k rows, current format only
    .venv/bin/python bench/scale.py --threshold           # exact-search p99 against n (ann_min_vectors)
    .venv/bin/python bench/scale.py --table bench/out/scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import string
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from scale_data import queries, reference, shipments_table
from scale_serving import (
    ChunkGone,
    ColdServer,
    TokenSeen,
    child_command,
    empty_server_rss,
    rss_mb,
    search,
    watch_change,
)
from scale_tables import print_report
from serve_load import run_level
from serve_server import REPO, server_env

BENCH = Path(__file__).resolve().parent
DATA = BENCH / "data" / "scale"
CHILD = BENCH / "scale_child.py"
BEFORE_COMMIT = "0a1cf5e"
FULL = {"rows": 1_000_000, "compare": 100_000, "requests_1": 200, "seconds_32": 20.0, "recall_queries": 200}
QUICK = {"rows": 20_000, "compare": 10_000, "requests_1": 50, "seconds_32": 5.0, "recall_queries": 50}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, help="rows of the main run (default 1000000; --quick 20000)")
    p.add_argument("--compare-rows", type=int, help="rows of the before/after pair (100000; 0 skips it)")
    p.add_argument("--skip-before", action="store_true", help="leave out the format before segments")
    p.add_argument("--quick", action="store_true", help="smoke run: 20k and 10k rows, short latency levels")
    p.add_argument("--threshold", action="store_true", help="only the flat-search p99 curve (into --out)")
    p.add_argument("--out", type=Path, default=BENCH / "out" / "scale.json")
    p.add_argument("--table", type=Path, help="print the tables of a saved JSON and stop")
    args = p.parse_args(argv)
    args.tuning = dict(QUICK if args.quick else FULL)
    args.rows = args.tuning["rows"] if args.rows is None else args.rows
    args.compare_rows = args.tuning["compare"] if args.compare_rows is None else args.compare_rows
    return args


def save(report: dict[str, Any], path: Path) -> None:
    """Write the JSON whole (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, path)


def phase(
    run: dict[str, Any], name: str, work: Callable[[], Any], into: dict[str, Any] | None = None
) -> bool:
    """Store work()'s result under `name` (in `into`, else in `run`), or its error in run["errors"]; the
    load average around it in run["load_avg_1m"]."""
    print(f"[{run['label']}] {name} ...", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    try:
        (run if into is None else into)[name] = work()
    except Exception as exc:  # a failed phase is recorded; the run goes on where it can
        run["errors"].append({"phase": name, "error": repr(exc), "traceback": traceback.format_exc()})
        print(f"[{run['label']}] {name} failed: {exc!r}", file=sys.stderr, flush=True)
        return False
    finally:
        run.setdefault("load_avg_1m", {})[name] = [load, os.getloadavg()[0]]
    return True


def code_env(code: str, chat: Path) -> dict[str, str]:
    """What children and servers of `code` add to the environment (serve_server.server_env adds the home):
    the hashing embedder, a local chat model, the code's src/ first on the path."""
    src = REPO / "src" if code == "after" else before_src()
    return {"ALMANAC_EMBEDDING__MODEL": "hashing", "ALMANAC_CHAT__MODEL": str(chat), "PYTHONPATH": str(src)}


def before_src() -> Path:
    """src/ of a worktree at the commit before segments, added on first use."""
    path = DATA / "before-src"
    if not (path / "src" / "almanac").is_dir():
        DATA.mkdir(parents=True, exist_ok=True)
        command = ["git", "worktree", "add", "--detach", str(path), BEFORE_COMMIT]
        subprocess.run(command, cwd=REPO, check=True)
    return path / "src"


def chat_model() -> Path:
    """SmolLM2 (the smallest embedded reader) converted once into a folder every server loads as is."""
    from almanac.core.model_cache import prepare_model_dir
    from almanac.core.settings import SMOLLM2

    return prepare_model_dir(SMOLLM2, DATA / "models")


def run_child(env: dict[str, str], mode: str, out: Path, *args: object) -> dict[str, Any]:
    """One scale_child.py mode; its JSON."""
    subprocess.run(child_command(CHILD, mode, "--out", str(out), *map(str, args)), env=env, check=True)
    return dict(json.loads(out.read_text()))


def measure_change(kind: str, url: str, folder: Path, extra: dict[str, str], rows: int) -> dict[str, Any]:
    """One change by a writer child while this process searches for it."""
    token = f"zq{kind}" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))  # one BM25 term
    row = {"update": rows // 3, "delete": 2 * rows // 3}.get(kind, 0)
    with httpx.Client(base_url=url, timeout=120) as client:
        query = reference(row) if kind == "delete" else token
        before = search(client, query)
    if kind == "delete":
        found = [r["id"] for r in before if query.lower() in r["text"].lower()]
        if not found:
            raise RuntimeError(f"row {row} is not found by its reference {query!r} before the delete")
        chunk = found[0]
        checks = {"dropped": ChunkGone(chunk), "visible": ChunkGone(chunk, full=len(before))}
    else:
        checks = {"visible": TokenSeen(token, {r["id"] for r in before})}
    out, doc = folder / f"change-{kind}.json", folder / "docs" / f"note-{token}.md"
    args = ["--kind", kind, "--db", folder / "source.sqlite", "--row", row, "--token", token, "--doc", doc]
    command = child_command(CHILD, "change", "--out", str(out), *map(str, args))
    watched = watch_change(url, query, checks, command, server_env(folder / "home", extra))
    result = dict(json.loads(out.read_text()), row=row, token=token, polls=watched["polls"])
    result["search_errors"] = watched["errors"]
    for name, seen in watched["first_seen_at"].items():
        commit = result["commit_at"]
        result[f"{name}_s"] = seen - commit if seen is not None and commit is not None else None
    return result


def serve(
    run: dict[str, Any],
    folder: Path,
    extra: dict[str, str],
    args: argparse.Namespace,
    flush: Callable[[], None],
) -> dict[str, Any]:
    """Cold start, memory and latency of a server on the home, then the three changes while it runs."""
    payloads = [{"query": q, "top_k": 10} for q in queries(400)]
    served: dict[str, Any] = {}
    with ColdServer(folder / "home", folder / "server.log", extra, payloads[0]["query"]) as server:
        served.update(cold_start_s=server.cold_start_s, ready_s=server.ready_seconds)
        served["rss_ready_mb"] = rss_mb(server.pid)
        run["server"] = served
        flush()
        print(f"  cold start {server.cold_start_s:.2f} s; 1 client ...", file=sys.stderr, flush=True)
        served["search_1"] = run_level(server.url, "/v1/search", payloads, 1, args.tuning["requests_1"], 600)
        print(f"  32 clients for {args.tuning['seconds_32']:.0f} s ...", file=sys.stderr, flush=True)
        served["search_32"] = run_level(
            server.url, "/v1/search", payloads, 32, 10**7, args.tuning["seconds_32"]
        )
        served["rss_loaded_mb"] = rss_mb(server.pid)
        flush()
        changes = run["changes"] = {}
        for kind in ("update", "delete", "add"):
            phase(run, kind, partial(measure_change, kind, server.url, folder, extra, run["rows"]), changes)
            flush()
    return served


def run_config(report: dict[str, Any], code: str, rows: int, chat: Path, args: argparse.Namespace) -> None:
    """Ingest, recall, serving and changes of one (code, rows) configuration."""
    label = f"{code}-{rows}"
    run: dict[str, Any] = {"label": label, "code": code, "rows": rows, "errors": []}
    report["runs"][label] = run
    folder = DATA / "runs" / label
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"[{label}] table of {rows:,} rows ...", file=sys.stderr, flush=True)
    source = folder / "source.sqlite"
    shutil.copyfile(shipments_table(DATA, rows), source)
    extra = code_env(code, chat)
    env = server_env(folder / "home", extra)
    empty = folder / "empty"  # a home without any collection: the models' share of the server's memory
    phase(run, "empty_server", lambda: empty_server_rss(empty / "home", empty / "server.log", extra))
    save(report, args.out)
    ingested = phase(
        run,
        "ingest",
        lambda: run_child(env, "ingest", folder / "ingest.json", "--db", source, "--rows", rows),
    )
    save(report, args.out)
    if ingested and code == "after":
        queries_n = args.tuning["recall_queries"]
        phase(run, "recall", lambda: run_child(env, "recall", folder / "recall.json", "--queries", queries_n))
        save(report, args.out)
    if ingested:
        phase(run, "server", lambda: serve(run, folder, extra, args, lambda: save(report, args.out)))
    save(report, args.out)


def main(argv: list[str] | None = None) -> int:
    """Run the configurations (or the threshold curve), write the JSON after each phase, print tables."""
    args = parse_args(argv)
    if args.table:
        print_report(json.loads(args.table.read_text()))
        return 0
    if args.threshold:
        report = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": {}}
        env = server_env(DATA / "runs" / "threshold", {"PYTHONPATH": str(REPO / "src")})
        report["threshold"] = run_child(env, "threshold", DATA / "threshold.json")
        save(report, args.out)
        print_report(report)
        return 0
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.node(),
                              "cpus": os.cpu_count(), "args": {k: str(v) for k, v in vars(args).items()},
                              "runs": {}}  # fmt: skip
    chat = chat_model()
    plan = [("after", args.rows)]
    if args.compare_rows:
        plan += [("after", args.compare_rows)] + ([] if args.skip_before else [("before", args.compare_rows)])
    for code, rows in dict.fromkeys(plan):  # --rows equal to --compare-rows: one run of the current format
        run_config(report, code, rows, chat, args)
    print_report(report)
    return 0 if not any(run["errors"] for run in report["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
