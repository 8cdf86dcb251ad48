"""Vector search at 1M x 384: exact search on the device (torch matmul + topk, fp32 and fp16), FAISS GPU flat
and IVF when faiss imports and sees a GPU; latency p50/p99 at batch 1 and 32, recall@10 vs CPU exact.

The vectors are unit vectors around 1,000 random centres (cosine to their centre ~0.7), so neighbours are
clustered as MiniLM's are rather than all nearly orthogonal. The reference is numpy fp32 brute force on the
CPU for `recall_queries` queries. Every latency covers the query's copy to the device and the ids' copy back,
as a server would pay them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpu_device import Device

Search = Callable[[Any], Any]  # float32 numpy (n, d) -> int64 numpy (n, k) ids


@dataclass(frozen=True, slots=True)
class SearchSizes:
    """How big the index is and how many queries are timed."""

    vectors: int = 1_000_000
    dim: int = 384
    centres: int = 1_000
    k: int = 10
    single_queries: int = 300  # batch-1 calls timed
    batches: int = 100  # batch-32 calls timed
    recall_queries: int = 256
    nlist: int = 1024  # IVF lists (~sqrt(vectors))
    nprobes: tuple[int, ...] = (8, 32)


SMOKE = SearchSizes(
    vectors=2_000, centres=16, single_queries=20, batches=5, recall_queries=64, nlist=16, nprobes=(2, 4)
)


def clustered_vectors(count: int, sizes: SearchSizes, seed: int, kind: str) -> Any:
    """`count` unit float32 vectors around seeded centres, as a numpy array (made on `kind`)."""
    import torch

    gen = torch.Generator(device=kind).manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(sizes.centres, sizes.dim, generator=gen, device=kind))
    gen.manual_seed(seed)
    pick = torch.randint(sizes.centres, (count,), generator=gen, device=kind)
    noise = torch.randn(count, sizes.dim, generator=gen, device=kind) / sizes.dim**0.5
    return torch.nn.functional.normalize(centres[pick] + noise).cpu().numpy()


def cpu_exact(base: Any, queries: Any, k: int) -> tuple[Any, float]:
    """(ids of the k best inner products, seconds per batch of 32), numpy fp32 on all CPU cores."""
    import numpy as np

    out, start = [], time.perf_counter()
    for lo in range(0, len(queries), 32):
        scores = queries[lo : lo + 32] @ base.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(out), (time.perf_counter() - start) / -(-len(queries) // 32)


def recall(found: Any, truth: Any) -> float:
    """Mean share of the true k nearest found, per query."""
    hits = [len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
    return sum(hits) / truth.size


def latency(search: Search, queries: Any, batch: int, calls: int, device: Device) -> dict[str, float]:
    """p50/p99/mean ms of `calls` searches of `batch` queries each (3 untimed first), and queries/s."""
    import numpy as np

    times = []
    for call in range(calls + 3):
        lo = (call * batch) % max(len(queries) - batch, 1)
        start = time.perf_counter()
        search(queries[lo : lo + batch])
        device.sync()
        times.append(time.perf_counter() - start)
    ms = np.array(times[3:]) * 1000
    return {
        "batch": batch,
        "calls": calls,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "queries_per_s": float(batch * 1000 / ms.mean()),
    }


def measure(search: Search, queries: Any, truth: Any, sizes: SearchSizes, device: Device) -> dict[str, Any]:
    """Latency at batch 1 and 32, and recall@k vs the CPU reference."""
    import numpy as np

    found = [search(queries[lo : lo + 32]) for lo in range(0, len(truth), 32)]
    return {
        "batch_1": latency(search, queries, 1, sizes.single_queries, device),
        "batch_32": latency(search, queries, 32, sizes.batches, device),
        "recall_at_k": recall(np.concatenate(found), truth),
    }


def torch_exact(base: Any, dtype_name: str, k: int, device: Device) -> Search:
    """Brute force on the device: one matmul of the queries by the whole base, then topk."""
    import torch

    dtype = getattr(torch, dtype_name)
    held = torch.from_numpy(base).to(device.kind, dtype)

    def search(queries: Any) -> Any:
        q = torch.from_numpy(queries).to(device.kind, dtype)
        return torch.topk(q @ held.T, k, dim=1).indices.cpu().numpy()

    return search


def faiss_indexes(base: Any, sizes: SearchSizes, device: Device) -> tuple[dict[str, Search], str | None]:
    """FAISS flat and IVF searchers (on every GPU; on the CPU when the device is), or why there are none."""
    try:
        import faiss
    except ImportError as exc:
        return {}, f"faiss GPU not available: faiss cannot be imported ({exc})"
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if device.is_gpu and not gpus:
        return (
            {},
            f"faiss GPU not available: faiss {faiss.__version__} imports but sees no GPU (a CPU build?)",
        )
    place = faiss.index_cpu_to_all_gpus if device.is_gpu else (lambda index: index)
    flat = place(faiss.IndexFlatIP(sizes.dim))
    flat.add(base)
    ivf = place(
        faiss.IndexIVFFlat(faiss.IndexFlatIP(sizes.dim), sizes.dim, sizes.nlist, faiss.METRIC_INNER_PRODUCT)
    )
    ivf.train(base[: min(len(base), sizes.nlist * 64)])
    ivf.add(base)
    space = faiss.GpuParameterSpace() if device.is_gpu else faiss.ParameterSpace()

    def at(index: Any, nprobe: int | None) -> Search:
        def search(queries: Any) -> Any:
            if nprobe is not None:
                space.set_index_parameter(index, "nprobe", nprobe)
            return index.search(queries, sizes.k)[1]

        return search

    found = {"faiss_flat": at(flat, None)}
    return found | {f"faiss_ivf{sizes.nlist}_nprobe{p}": at(ivf, p) for p in sizes.nprobes}, None


def run(device: Device, sizes: SearchSizes, record: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Every searcher in turn; `record` gets the results so far after each one."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 here
    base = clustered_vectors(sizes.vectors, sizes, seed=1, kind=device.kind)
    queries = clustered_vectors(max(sizes.recall_queries, 32 * 4), sizes, seed=2, kind=device.kind)
    truth, cpu_batch_s = cpu_exact(base, queries[: sizes.recall_queries], sizes.k)
    result: dict[str, Any] = {
        "vectors": len(base),
        "dim": sizes.dim,
        "k": sizes.k,
        "recall_queries": len(truth),
        "cpu_exact_numpy_ms_per_batch_32": cpu_batch_s * 1000,
        "searchers": {},
    }
    searchers: dict[str, Callable[[], Search]] = {
        "torch_exact_fp32": lambda: torch_exact(base, "float32", sizes.k, device),
        "torch_exact_fp16": lambda: torch_exact(base, "float16", sizes.k, device),
    }
    for name, build in searchers.items():
        result["searchers"][name] = _guarded(lambda b=build: measure(b(), queries, truth, sizes, device))
        device.release()
        record(result)
    try:
        found, reason = faiss_indexes(base, sizes, device)
    except Exception as exc:  # a broken faiss must not hide the torch figures
        found, reason = {}, f"faiss failed: {type(exc).__name__}: {exc}"
    result["faiss"] = reason or "ok"
    for name, search in found.items():
        result["searchers"][name] = _guarded(lambda s=search: measure(s, queries, truth, sizes, device))
        record(result)
    return result


def _guarded(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return work()
    except Exception as exc:  # recorded; the other searchers still run
        return {"error": f"{type(exc).__name__}: {exc}"}


def summary(result: dict[str, Any]) -> list[str]:
    """Lines for the final table."""
    head = f"search over {result['vectors']:,} x {result['dim']}, k={result['k']}, recall on "
    cpu = f"{result['cpu_exact_numpy_ms_per_batch_32']:.1f} ms"
    lines = [head + f"{result['recall_queries']} queries; CPU numpy exact {cpu} per batch of 32"]
    for name, got in result["searchers"].items():
        if "error" in got:
            lines.append(f"  {name:<26} error: {got['error']}")
            continue
        one, many = got["batch_1"], got["batch_32"]
        lines.append(
            f"  {name:<26} b1 p50 {one['p50_ms']:.2f} / p99 {one['p99_ms']:.2f} ms; "
            f"b32 p50 {many['p50_ms']:.2f} / p99 {many['p99_ms']:.2f} ms ({many['queries_per_s']:,.0f} q/s); "
            f"recall@{result['k']} {got['recall_at_k']:.4f}"
        )
    if result.get("faiss") != "ok":
        lines.append(f"  {result.get('faiss')}")
    return lines
