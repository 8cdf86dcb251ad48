"""Ray ingestion overhead: the same corpus through `almanac ingest` locally and with `--engine ray`.

Each engine ingests into a fresh ALMANAC_HOME in its own child process. A warm-up ingest of one file first
creates the collection and the embedder's caches (the int8 ONNX export) in that home, so the timed run
measures parsing, chunking, embedding and committing, plus, for Ray, starting Ray and its actor pool (a real
cost of every run). Throughput is committed chunks per second of the ingest's own clock (report.seconds)
and of the child's wall time; the ratio is Ray over local (target >= 0.8 on one machine). Both runs must
commit the same number of chunks. On a machine with GPUs, local embeds on the GPU and Ray puts one actor on
each GPU.

    .venv/bin/python bench/ray_ingest.py                                   # Python docs, 50 library pages
    .venv/bin/python bench/ray_ingest.py --folder samples/documents --model hashing   # seconds, a check
    .venv/bin/python bench/ray_ingest.py --limit-files 0 --ray-address 10.0.0.5:6379  # a real cluster

Writes bench/out/ray_ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import corpus

BENCH = Path(__file__).resolve().parent
TARGET_RATIO = 0.8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", type=Path, help="ingest this folder instead of the Python docs corpus")
    p.add_argument("--subset", default="library", help="Python docs: 'all' or a top folder such as library")
    p.add_argument("--limit-files", type=int, default=50, help="Python docs: 0 for every file of the subset")
    p.add_argument("--model", default="minilm", help="ALMANAC_EMBEDDING__MODEL ('hashing' for a dry run)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "int8"])
    p.add_argument("--ray-address", help="join this Ray cluster instead of starting a local Ray")
    p.add_argument("--out", type=Path, default=BENCH / "out" / "ray_ingest.json")
    return p.parse_args(argv)


def corpus_files(args: argparse.Namespace) -> list[Path]:
    """The files both engines ingest."""
    if args.folder is not None:
        return sorted(p for p in args.folder.resolve().rglob("*") if p.is_file())
    root = corpus.ensure_corpus()
    return corpus.select_files(root, args.subset, args.limit_files or None)


def run_ingest(home: Path, args: argparse.Namespace, files: list[Path], engine: str) -> dict[str, Any]:
    """`almanac ingest --json FILES` with `engine` in a child; its report plus the child's wall time."""
    env = {
        **os.environ,
        "ALMANAC_HOME": str(home),
        "ALMANAC_EMBEDDING__MODEL": args.model,
        "ALMANAC_EMBEDDING__PRECISION": args.precision,
    }
    cmd = [sys.executable, "-m", "almanac.cli.main", "ingest", "--json", "--engine", engine]
    if engine == "ray" and args.ray_address:
        cmd += ["--ray-address", args.ray_address]
    started = time.perf_counter()
    done = subprocess.run([*cmd, *map(str, files)], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: some files failed, listed in the report
        raise SystemExit(f"{engine} ingest failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report | {"wall_s": round(wall, 3)}


def measure(args: argparse.Namespace, files: list[Path], engine: str, workdir: Path) -> dict[str, Any]:
    """Warm up a fresh home on the first file, then time the rest of the corpus into it."""
    home = workdir / engine
    run_ingest(home, args, files[:1], engine)
    report = run_ingest(home, args, files[1:], engine)
    chunks, seconds, wall = report["chunks_committed"], report["seconds"], report["wall_s"]
    return {
        "files": len(files) - 1,
        "chunks": chunks,
        "failed": len(report["failed"]),
        "seconds": seconds,
        "wall_s": wall,
        "chunks_per_s": round(chunks / max(seconds, 1e-9), 2),
        "chunks_per_s_wall": round(chunks / max(wall, 1e-9), 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Run both engines, print the throughputs and the ratio, write the JSON."""
    args = parse_args(argv)
    files = corpus_files(args)
    if len(files) < 2:
        raise SystemExit("need at least two files (one warms up, the rest are timed)")
    with tempfile.TemporaryDirectory(prefix="almanac-ray-bench-") as tmp:
        local = measure(args, files, "local", Path(tmp))
        on_ray = measure(args, files, "ray", Path(tmp))
    if local["chunks"] != on_ray["chunks"]:
        raise SystemExit(f"the engines committed different chunk counts: {local} vs {on_ray}")
    ratio = on_ray["chunks_per_s"] / max(local["chunks_per_s"], 1e-9)
    wall_ratio = on_ray["chunks_per_s_wall"] / max(local["chunks_per_s_wall"], 1e-9)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "model": args.model,
        "precision": args.precision,
        "ray_address": args.ray_address or "local Ray on 127.0.0.1",
        "local": local,
        "ray": on_ray,
        "ratio": round(ratio, 3),
        "ratio_wall": round(wall_ratio, 3),
        "target_ratio": TARGET_RATIO,
    }
    for name, run in (("local", local), ("ray", on_ray)):
        rates = f"{run['chunks_per_s']} chunks/s ({run['chunks_per_s_wall']} wall)"
        print(f"{name:6} {run['chunks']} chunks, {rates}")
    print(f"ratio ray/local: {ratio:.2f} (wall {wall_ratio:.2f}; target >= {TARGET_RATIO})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
