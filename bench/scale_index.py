"""Child modes of bench/scale.py that read the published index (the segmented format only) or FAISS alone.

recall:    recall@10 of the index as published (IndexStore.load, every segment as the server loads it)
           against exact top-10 by numpy over every vector in the catalog; a result whose exact score
           ties the 10th best counts as found (the hashing embedder gives many equal scores).
threshold: single-query exact search (faiss IndexFlatIP, k=10) p50/p99 against n random unit vectors,
           and the first n whose p99 passes the limit: where IndexSettings.ann_min_vectors belongs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from scale_data import queries

from almanac.cli import wiring
from almanac.core.settings import Settings


def recall(args: argparse.Namespace) -> dict[str, Any]:
    """recall@10 of the served index (its segments as published) against exact search by numpy."""
    from almanac.core.embedder import HashingEmbedder
    from almanac.core.index_manifest import read_manifest
    from almanac.core.index_store import IndexStore

    settings = Settings()
    catalog = wiring.open_catalog(settings)
    row = catalog.require_collection(settings.default_collection)
    started = time.perf_counter()
    snapshot = IndexStore(settings.index_dir, settings.index).load(catalog, row.name)
    load_s = time.perf_counter() - started
    ids, vectors, _ = catalog.chunk_payloads(row.id)
    q = HashingEmbedder(row.dimension).embed(queries(args.queries, seed=11))
    _, found = snapshot.index.search(q, 10)
    hits = []
    for part in range(0, len(q), 25):  # 25 queries x N scores at a time
        exact = q[part : part + 25] @ vectors.T
        kth = -np.partition(-exact, 9, axis=1)[:, 9]  # the 10th best exact score
        for row_scores, got, floor in zip(exact, found[part : part + 25], kth, strict=True):
            got = got[got >= 0]
            scores = row_scores[np.searchsorted(ids, got)]
            hits.append(min(10, int(np.sum(scores >= floor - 1e-6))))  # ties at the 10th count as found
    manifest = read_manifest(catalog, row.id)
    return {
        "recall_at_10": float(np.mean(hits)) / 10,
        "queries": len(q),
        "vectors": len(ids),
        "snapshot_load_s": load_s,
        "rebuilt": snapshot.rebuilt,
        "version": manifest.version,
        "deleted": int(manifest.deleted.size),
        "segments": [{"name": e.name, "kind": e.kind, "vectors": e.vector_count} for e in manifest.segments],
    }


def threshold(args: argparse.Namespace) -> dict[str, Any]:
    """Single-query exact search (faiss IndexFlatIP, k=10) p50/p99 against collection size."""
    import faiss

    rng, sizes, levels = np.random.default_rng(0), [int(n) for n in args.sizes.split(",")], []
    for n in sizes:
        base = rng.standard_normal((n, args.dim), dtype=np.float32)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        index = faiss.IndexFlatIP(args.dim)
        index.add(base)
        q = rng.standard_normal((args.queries + 5, args.dim), dtype=np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        times = []
        for i in range(len(q)):
            started = time.perf_counter()
            index.search(q[i : i + 1], 10)
            times.append(time.perf_counter() - started)
        p50, p99 = np.percentile(np.asarray(times[5:]) * 1000, [50, 99])
        levels.append({"n": n, "p50_ms": float(p50), "p99_ms": float(p99)})
        print(f"  flat n={n:,}: p50 {p50:.1f} ms, p99 {p99:.1f} ms", file=sys.stderr, flush=True)
        del index, base
    over = [lv["n"] for lv in levels if lv["p99_ms"] > args.limit_ms]
    return {"limit_ms": args.limit_ms, "levels": levels, "first_n_over": over[0] if over else None,
            "dim": args.dim, "threads": faiss.omp_get_max_threads()}  # fmt: skip
