"""Serving benchmark: /v1/search and /v1/query against a live `almanac serve` on loopback.

One run measures, on the Python 3.11 documentation (bench/corpus.py) and a synthetic size sweep:
  1. /v1/search latency p50/p99 and throughput at 1, 8 and 32 concurrent clients (closed loop, a fixed
     number of requests per level, queries from the corpus's section headings), on the ingested corpus
     (bench/serve_homes.py: `almanac ingest` into bench/out/serve/home-SUBSET-N);
  2. /v1/query over ~10 questions with small max_tokens: retrieval / prompt / queue / generation from the
     response's `timings`, and generation tokens/s through the server as a ratio to `model.generate` called
     directly on the same prompts in another process, paired question by question (bench/serve_generation.py);
  3. /v1/search again on a home of 200k chunks (real corpus chunks + synthetic filler with random unit
     vectors; queries embedded by the real MiniLM), built once through the product's catalog and index APIs.
Each server is a child process on a free 127.0.0.1 port, ready once /readyz says so, stopped with SIGTERM.

    .venv/bin/python bench/serve.py                  # full run; tables on stdout, bench/out/serve.json
    .venv/bin/python bench/serve.py --quick          # smoke run: fewer requests, 20k synthetic chunks
    .venv/bin/python bench/serve.py --index-kinds flat,ivf --profile --server-env OMP_WAIT_POLICY=PASSIVE

--index-kinds: one synthetic home (and server) per FAISS kind. --profile (needs py-spy in .venv): extra levels
under py-spy at 1 and 32 clients, busy-time shares per part of the request path, and `py-spy dump` snapshots
counting the micro-batches that run at once. --server-env: environment for every server and for the direct
baseline alike. The machine's load average is recorded before and after each level: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import corpus
import serve_homes
from serve_generation import query_pass
from serve_load import run_level
from serve_profile import batch_concurrency, profiled_level
from serve_server import LiveServer
from serve_tables import print_report

from almanac.core.model_cache import prepare_model_dir
from almanac.core.settings import SMOLLM2

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
TARGETS = {"search_p99_ms_at_200k": 50.0, "throughput_32_vs_1": 3.0, "generation_ratio": 0.9}
FULL = {"requests": {1: 300, 8: 800, 32: 1600}, "questions": 10, "synthetic": 200_000, "limit": 60}
QUICK = {"requests": {1: 40, 8: 120, 32: 320}, "questions": 3, "synthetic": 20_000, "limit": 15}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer requests and questions, 20k synthetic chunks")
    p.add_argument(
        "--subset", default="library", help="documentation folder to ingest ('all', 'library', ...)"
    )
    p.add_argument("--limit-files", type=int, help="pages of the subset, spread evenly (0: all; default 60)")
    p.add_argument("--synthetic-chunks", type=int, help="size of the sweep's home (default 200000)")
    p.add_argument("--questions", type=int, help="questions for /v1/query (default 10)")
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--skip-query", action="store_true", help="leave out the /v1/query pass")
    p.add_argument("--skip-synthetic", action="store_true", help="leave out the size sweep")
    p.add_argument(
        "--index-kinds", default="flat", help="comma-separated FAISS kinds for the size sweep (flat,ivf,hnsw)"
    )
    p.add_argument("--profile", action="store_true", help="extra levels at 1 and 32 clients under py-spy")
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for the servers and the direct baseline, e.g. OMP_NUM_THREADS=1",
    )
    p.add_argument("--out", type=Path, default=OUT / "serve.json")
    return p.parse_args(argv)


def _plan(args: argparse.Namespace) -> dict[str, Any]:
    plan = dict(QUICK if args.quick else FULL)
    for key, value in (("limit", args.limit_files), ("synthetic", args.synthetic_chunks)):
        plan[key] = value if value is not None else plan[key]
    plan["questions"] = args.questions or plan["questions"]
    plan["server_env"] = dict(item.split("=", 1) for item in args.server_env)
    return plan


def search_levels(url: str, queries: list[str], requests: dict[int, int]) -> list[dict[str, Any]]:
    """/v1/search at each concurrency, in increasing order, then 1 client again (the server's state after
    concurrent load differs from a fresh one's; both are shown); each level logs its line as it ends."""
    payloads = [{"query": q} for q in queries]
    levels = []
    for concurrency, count in [*requests.items(), (1, requests[1])]:
        level = run_level(url, "/v1/search", payloads, concurrency, count)
        level["again"] = any(lv["concurrency"] == concurrency for lv in levels)
        print(
            f"  search c={concurrency}: p50 {level['p50_ms']:.1f} ms p99 {level['p99_ms']:.1f} ms "
            f"{level['throughput_rps']:.1f} req/s errors {level['errors']}",
            file=sys.stderr,
            flush=True,
        )
        levels.append(level)
    return levels


def _profile(server: LiveServer, queries: list[str], plan: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    """Extra levels after the measured ones: under py-spy record (1 and 32 clients), then with py-spy dump
    snapshots of the micro-batches in flight (32 clients)."""
    payloads = [{"query": q} for q in queries]
    counts = {1: plan["requests"][1], 32: plan["requests"][32] // 2}
    found = [
        profiled_level(server, payloads, c, n, OUT / "serve" / f"profile-{tag}-c{c}.txt")
        for c, n in counts.items()
    ]
    found.append(batch_concurrency(server, payloads, 32, plan["requests"][32]))
    if None in found:
        print("  --profile: py-spy is not installed (.venv/bin/pip install py-spy)", file=sys.stderr)
    return [f for f in found if f is not None]


def _serve_corpus(
    args: argparse.Namespace, plan: dict[str, Any], home: Path, log: Path
) -> tuple[dict[str, Any], list[str]]:
    chunks = serve_homes.corpus_chunks(home)
    queries = serve_homes.heading_queries(chunks)
    random.Random(11).shuffle(queries)
    result: dict[str, Any] = {"chunks": len(chunks), "distinct_queries": len(queries)}
    with LiveServer(home, log, plan["server_env"]) as server:
        result["ready_s"] = server.ready_seconds
        print(f"corpus server ready in {server.ready_seconds:.1f} s ({len(chunks)} chunks)", file=sys.stderr)
        result["search"] = search_levels(server.url, queries, plan["requests"])
        if args.profile:
            result["profiles"] = _profile(server, queries, plan, "corpus")
        if not args.skip_query:
            questions = serve_homes.heading_questions(chunks, plan["questions"])
            model_dir = prepare_model_dir(SMOLLM2, home / "models")  # converted by the server's warm-up
            query = query_pass(server.url, questions, args.max_tokens, model_dir, plan["server_env"])
            result["query"] = query
            print(
                f"  query: server {query['server_tokens_per_s']:.2f} tok/s, direct "
                f"{query['direct_tokens_per_s']:.2f} tok/s, ratio {query['ratio']:.3f}",
                file=sys.stderr,
                flush=True,
            )
    result["exit_code"] = server.exit_code
    return result, queries


def _serve_synthetic(
    args: argparse.Namespace,
    plan: dict[str, Any],
    corpus_home: Path,
    queries: list[str],
    kind: str,
    log: Path,
) -> dict[str, Any]:
    home = OUT / "serve" / f"home-synthetic-{plan['synthetic']}-{kind}"
    print(f"building or reusing {home} ...", file=sys.stderr, flush=True)
    built = serve_homes.ensure_synthetic_home(home, corpus_home, plan["synthetic"], kind)
    model_dir = prepare_model_dir(SMOLLM2, corpus_home / "models")  # no second GGUF conversion
    result: dict[str, Any] = {"home": str(home), "kind": kind, **built}
    env = {**plan["server_env"], "ALMANAC_CHAT__MODEL": str(model_dir), "ALMANAC_INDEX__KIND": kind}
    with LiveServer(home, log, env) as server:
        result["ready_s"] = server.ready_seconds
        print(f"synthetic {kind} server ready in {server.ready_seconds:.1f} s", file=sys.stderr, flush=True)
        result["search"] = search_levels(server.url, queries, plan["requests"])
        if args.profile:
            result["profiles"] = _profile(server, queries, plan, f"synthetic-{plan['synthetic']}-{kind}")
    result["exit_code"] = server.exit_code
    return result


def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "load_avg": os.getloadavg(),
    }


def _save(report: dict[str, Any], path: Path) -> None:
    report["machine"]["load_avg_end"] = os.getloadavg()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))


def main(argv: list[str] | None = None) -> int:
    """Run every stage, print the tables, write the JSON."""
    args = parse_args(argv)
    plan = _plan(args)
    log = OUT / "serve" / "server.log"
    root = corpus.ensure_corpus()
    files = corpus.select_files(root, args.subset, plan["limit"] or None)
    home = OUT / "serve" / f"home-{args.subset}-{plan['limit']}"
    report: dict[str, Any] = {
        "command": shlex.join([".venv/bin/python", "bench/serve.py", *(argv or sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": _machine(),
        "plan": plan,
        "targets": TARGETS,
        "corpus": {"package": corpus.package_version(), "subset": args.subset, "files": len(files)},
    }
    print(f"ingesting {len(files)} pages into {home} ...", file=sys.stderr, flush=True)
    report["corpus"]["ingest"] = serve_homes.ingest_corpus(home, files, log)
    report["corpus_serving"], queries = _serve_corpus(args, plan, home, log)
    _save(report, args.out)  # each stage's figures survive a failure in the next one
    report["synthetic_serving"] = []
    for kind in [] if args.skip_synthetic else args.index_kinds.split(","):
        report["synthetic_serving"].append(_serve_synthetic(args, plan, home, queries, kind, log))
        _save(report, args.out)
    print_report(report)
    print(f"\nJSON: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
