"""Ingestion benchmark: Almanac vs raw SentenceTransformer.encode vs LlamaIndex, on the Python 3.11 docs.

One run measures, side by side on the same HTML files (bench/corpus.py fetches them):
  1. ours: `almanac ingest --json FILES` (read, parse, chunk, embed, catalog, FAISS publish) in a child;
  2. the same command again with nothing changed (the no-change re-run);
  3. raw `SentenceTransformer.encode` of exactly the chunk texts our run stored (embed_text of each chunk),
     same MiniLM folder, batch size and normalisation; it also checks the vectors equal the stored ones;
  4. LlamaIndex (bench/llamaindex_ingest.py) in its own virtual environment bench/.venv-llamaindex,
     created here from bench/requirements-llamaindex.txt on first use.
Throughput excludes model loading on every side; peak RSS is each child's own ru_maxrss.

    .venv/bin/python bench/ingest.py                    # default subset; writes bench/out/ingest.json
    .venv/bin/python bench/ingest.py --subset all --limit-files 0      # the whole documentation (long)
    .venv/bin/python bench/ingest.py --limit-files 10 --skip-llamaindex --profile   # quick look + cProfile
    .venv/bin/python bench/ingest.py --precision fp32   # the torch fp32 encoder instead of the CPU default

`--precision` (ALMANAC_EMBEDDING__PRECISION) picks our encoder; the raw encode (3) uses the same one: the
sentence-transformers model for fp32/fp16, the ONNX Runtime int8 encoder for int8. LlamaIndex always runs
its own torch fp32 HuggingFaceEmbedding.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import corpus

BENCH = Path(__file__).resolve().parent
LLAMA_VENV = BENCH / ".venv-llamaindex"
DEFAULT_SUBSET, DEFAULT_LIMIT = "library", 50
TARGETS = {"vs_raw": 0.9, "vs_llamaindex": 1.5, "rerun_pct": 5.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The bench's command line (the `_ours` and `_raw` modes are its own child processes)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", nargs="?", default="run", choices=["run", "_ours", "_raw"], help=argparse.SUPPRESS)
    p.add_argument("--subset", default=DEFAULT_SUBSET, help="'all' or a top folder such as library")
    p.add_argument("--limit-files", type=int, default=DEFAULT_LIMIT, help="0 for every file of the subset")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "int8"])
    p.add_argument("--out", type=Path, default=BENCH / "out" / "ingest.json")
    p.add_argument("--skip-llamaindex", action="store_true")
    p.add_argument("--profile", action="store_true", help="cProfile our first run into out/ingest_ours.prof")
    p.add_argument("--files", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


# -- child processes ---------------------------------------------------------------------------------
def time_phases() -> dict[str, float]:
    """Wrap the pipeline's stages with wall-clock timers (no profiler overhead); returns the totals.

    `flush` holds `embed`: flush - embed is the catalog transaction plus the FAISS copy, write and publish."""
    from almanac.core.embedder import SentenceTransformerEmbedder
    from almanac.core.onnx_encoder import OnnxEmbedder
    from almanac.indexer import pipeline
    from almanac.indexer.batch_writer import BatchWriter
    from almanac.indexer.chunker import Chunker

    spent = dict.fromkeys(("read_parse", "hash", "chunk", "flush", "embed"), 0.0)

    def timed(owner: object, name: str, phase: str) -> None:
        inner = getattr(owner, name)

        @functools.wraps(inner)
        def wrapper(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[phase] += time.perf_counter() - started

        setattr(owner, name, wrapper)

    timed(pipeline, "read_bytes", "read_parse")
    timed(pipeline, "sha256", "hash")
    timed(Chunker, "chunk", "chunk")
    timed(BatchWriter, "flush", "flush")
    timed(SentenceTransformerEmbedder, "embed", "embed")
    timed(OnnxEmbedder, "embed", "embed")
    return spent


def child_ours(args: argparse.Namespace) -> dict:
    """`almanac ingest --json FILES` in this process, exactly as the console script runs it."""
    from almanac.cli.main import main as almanac_main

    argv = ["ingest", "--json", *args.files.read_text().splitlines()]
    phases = time_phases()
    out, cpu, started = io.StringIO(), _cpu_seconds(), time.perf_counter()
    with contextlib.redirect_stdout(out):
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            code = profiler.runcall(almanac_main, argv)
            profiler.dump_stats(str(args.out.parent / "ingest_ours.prof"))
        else:
            code = almanac_main(argv)
    return {
        "exit_code": code,
        "report": json.loads(out.getvalue()),
        "phase_seconds": phases,
        "command_seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu_seconds() - cpu,
        "peak_rss_mib": _peak_rss_mib(),
    }


def child_raw(args: argparse.Namespace) -> dict:
    """Raw encode of the chunk texts the catalog holds after our run; checks them against stored vectors."""
    import numpy as np
    import sentence_transformers
    import torch

    from almanac.core.catalog import Catalog
    from almanac.core.embedder import embedded_minilm_path, pick_device
    from almanac.core.settings import Settings
    from almanac.core.types import ChunkDraft
    from almanac.indexer.batch_writer import embed_text

    settings = Settings()
    catalog = Catalog(settings.catalog_url)
    records = list(catalog.iter_chunks(settings.default_collection))
    texts = [embed_text(ChunkDraft(r.text, r.locator, r.ordinal, "")) for r in records]
    collection = catalog.require_collection(settings.default_collection)
    ids, matrix, _ = catalog.chunk_payloads(collection.id)
    row_of = {chunk_id: row for row, chunk_id in enumerate(ids.tolist())}
    stored = matrix[[row_of[r.id] for r in records]]  # in the order of `texts`
    device = pick_device(settings.embedding.device)
    model = sentence_transformers.SentenceTransformer(
        str(embedded_minilm_path()), device=device, local_files_only=True
    )
    if collection.precision == "fp16":
        model.half()  # as SentenceTransformerEmbedder does on a GPU
    encode = functools.partial(model.encode, batch_size=args.batch_size, normalize_embeddings=True)
    if collection.precision == "int8":  # the same ONNX Runtime encoder as ours, called directly
        from almanac.core.embedder import build_embedder

        encode = build_embedder(settings.embedding, settings.models_dir, "int8").embed
        encode(["warm up"])  # session start out of the timing, as the model load is for torch
    cpu, started = _cpu_seconds(), time.perf_counter()
    vectors = encode(texts)
    seconds = time.perf_counter() - started
    tokens = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
    return {
        "precision": collection.precision,
        "chunks": len(texts),
        "embedded_chars": sum(map(len, texts)),
        "embedded_tokens": sum(map(len, tokens)),  # what the model ran on: special tokens in, truncation out
        "seconds": seconds,
        "cpu_seconds": _cpu_seconds() - cpu,
        "min_cosine_to_stored": float(np.min(np.sum(vectors.astype(np.float32) * stored, axis=1))),
        "peak_rss_mib": _peak_rss_mib(),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__},
    }


# -- the parent --------------------------------------------------------------------------------------
def run_child(command: list[str], env: dict[str, str], log: Path) -> dict:
    """Run one measured child; its last stdout line is its JSON result, stderr goes to `log`."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with log.open("a") as err:
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed ({shlex.join(command[:3])} ...); see {log}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(process_seconds=wall, load_before=load, load_after=os.getloadavg()[0])
    return result


def ensure_llamaindex_venv() -> Path:
    """bench/.venv-llamaindex with torch==2.13.0 installed first (the CPU wheel), then the requirements."""
    python = LLAMA_VENV / "bin" / "python"
    stamp = LLAMA_VENV / ".installed"
    requirements = BENCH / "requirements-llamaindex.txt"
    if stamp.is_file() and stamp.stat().st_mtime >= requirements.stat().st_mtime:
        return python
    print(f"creating {LLAMA_VENV} (one time, a few minutes)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(LLAMA_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "-r", str(requirements)], check=True)
    stamp.touch()
    return python


def measure(args: argparse.Namespace, files: list[Path], work: Path) -> dict:
    """All four measurements, in order: ours, no-change re-run, raw encode, LlamaIndex."""
    from almanac.core.embedder import embedded_minilm_path

    listing = work / "files.txt"
    listing.write_text("".join(f"{f}\n" for f in files))
    env = {
        **os.environ,
        "ALMANAC_HOME": str(work / "almanac-home"),
        "ALMANAC_EMBEDDING__BATCH_SIZE": str(args.batch_size),
        "ALMANAC_EMBEDDING__PRECISION": args.precision,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--files", str(listing), "--batch-size", str(args.batch_size), "--out", str(args.out)]
    log = work / "children.log"
    prepared = prepare_encoder(args.precision, work / "almanac-home" / "models")
    results = {"ours": run_child([*me, "_ours", *common, *(["--profile"] if args.profile else [])], env, log)}
    results["rerun"] = run_child([*me, "_ours", *common], env, log)
    results["raw"] = run_child([*me, "_raw", *common], env, log)
    if not args.skip_llamaindex:
        python = ensure_llamaindex_venv()
        li = [str(python), str(BENCH / "llamaindex_ingest.py"), "--files", str(listing)]
        li += ["--model", str(embedded_minilm_path()), "--persist-dir", str(work / "llamaindex")]
        li += ["--batch-size", str(args.batch_size), "--device", results["raw"]["device"]]
        results["llamaindex"] = run_child(li, env, log)
    results["ours"]["onnx_export_seconds"] = prepared
    return results


def prepare_encoder(precision: str, models_dir: Path) -> float:
    """Export the int8 encoder into the bench home's models cache first: a one-time conversion, like the
    chat model's, kept out of the timed ingest as model loading is. Returns its seconds (0 for torch)."""
    from almanac.core.embedder import embedded_minilm_path, pick_device
    from almanac.core.onnx_export import ensure_onnx_file, onnx_exportable
    from almanac.core.precision import resolve_precision

    folder = embedded_minilm_path()
    if resolve_precision(precision, pick_device("auto"), onnx_exportable(folder)) != "int8":
        return 0.0
    started = time.perf_counter()
    ensure_onnx_file(folder, "int8", models_dir)
    return time.perf_counter() - started


def rows(results: dict) -> dict[str, dict]:
    """Per pipeline: chunks, seconds, model tokens, CPU seconds, peak RSS and load, measured the same way."""
    ours, rerun, raw = results["ours"], results["rerun"], results["raw"]
    out = {
        "ours": {
            "chunks": ours["report"]["chunks_committed"],
            "seconds": ours["report"]["seconds"],
            "tokens": raw["embedded_tokens"],
            # the re-run's CPU is all start-up (imports, model load): what remains is the pipeline's
            "cpu": ours["cpu_seconds"] - rerun["cpu_seconds"],
        },
        "raw": {"chunks": raw["chunks"], "seconds": raw["seconds"], "tokens": raw["embedded_tokens"]},
    }
    out["raw"]["cpu"] = raw["cpu_seconds"]
    if "llamaindex" in results:
        li = results["llamaindex"]
        out["llamaindex"] = {
            "chunks": li["chunks"],
            "seconds": li["seconds"],
            "tokens": li["embedded_tokens"],
            "cpu": li["cpu_seconds"],
        }
    for name, row in out.items():
        row.update(
            peak_rss_mib=results[name]["peak_rss_mib"],
            load=(results[name]["load_before"], results[name]["load_after"]),
        )
        row.update(chunks_per_s=row["chunks"] / row["seconds"], chunks_per_cpu_s=row["chunks"] / row["cpu"])
    return out


def figures(results: dict) -> dict:
    """Throughputs, ratios, where our time went, and pass/fail against the targets."""
    r = rows(results)
    ours, rerun = results["ours"], results["rerun"]
    phases = ours["phase_seconds"]
    total = ours["report"]["seconds"]
    out = {
        "rows": r,
        "ratio_vs_raw": r["ours"]["chunks_per_s"] / r["raw"]["chunks_per_s"],
        "ratio_vs_raw_cpu": r["ours"]["chunks_per_cpu_s"] / r["raw"]["chunks_per_cpu_s"],
        "peak_rss_mib": ours["peak_rss_mib"],
        "rerun_pct_pipeline": 100 * rerun["report"]["seconds"] / total,
        "rerun_pct_command": 100 * rerun["process_seconds"] / ours["process_seconds"],
        "ours_time_pct": {
            "embed": 100 * phases["embed"] / total,
            "read_parse": 100 * phases["read_parse"] / total,
            "chunk": 100 * phases["chunk"] / total,
            "catalog_faiss": 100 * (phases["flush"] - phases["embed"]) / total,
            "other": 100
            * (total - phases["read_parse"] - phases["hash"] - phases["chunk"] - phases["flush"])
            / total,
        },
    }
    if "llamaindex" in r:
        li = r["llamaindex"]
        out["ratio_vs_llamaindex"] = r["ours"]["chunks_per_s"] / li["chunks_per_s"]
        out["ratio_vs_llamaindex_cpu"] = r["ours"]["chunks_per_cpu_s"] / li["chunks_per_cpu_s"]
        out["ratio_vs_llamaindex_tokens"] = (r["ours"]["tokens"] / total) / (li["tokens"] / li["seconds"])
        out["ratio_vs_llamaindex_corpus"] = li["seconds"] / total  # the same files, start to persisted
    out["pass"] = {
        "vs_raw": out["ratio_vs_raw"] >= TARGETS["vs_raw"],
        "vs_llamaindex": out.get("ratio_vs_llamaindex", 0.0) >= TARGETS["vs_llamaindex"],
        "rerun": out["rerun_pct_command"] < TARGETS["rerun_pct"],
    }
    return out


NAMES = {
    "ours": "Almanac `almanac ingest`, end to end, {p} encoder",
    "raw": "raw encode, {p}, same texts",
    "llamaindex": "LlamaIndex {v}: HTMLTagReader, SentenceSplitter, HF embedding, FAISS",
}


def table(result: dict) -> str:
    """The figures as a Markdown table plus the ratio lines (pasted into BENCHMARKS.md as is)."""
    r, f, c = result["results"], result["figures"], result["corpus"]
    version = r.get("llamaindex", {}).get("llama_index_core", "")
    lines = [
        f"Corpus: {c['package']}, subset `{c['subset']}`: {c['files']} of {c['subset_files']} HTML files, "
        f"{c['megabytes']:.1f} MB. Machine: {result['machine']['summary']}.",
        "",
        "| pipeline | chunks | seconds | chunks/s | model tokens/s | chunks/CPU s | peak RSS MiB | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in f["rows"].items():
        lines.append(
            f"| {NAMES[name].format(v=version, p=r['raw']['precision'])} | {row['chunks']} | "
            f"{row['seconds']:.1f} | "
            f"{row['chunks_per_s']:.2f} | {row['tokens'] / row['seconds']:,.0f} | "
            f"{row['chunks_per_cpu_s']:.2f} | {row['peak_rss_mib']:.0f} | "
            f"{row['load'][0]:.1f}-{row['load'][1]:.1f} |"
        )
    rerun = r["rerun"]
    lines.append(
        f"| no-change re-run: pipeline / whole command | {rerun['report']['unchanged']} files unchanged | "
        f"{rerun['report']['seconds']:.2f} / {rerun['process_seconds']:.1f} | | | | "
        f"{rerun['peak_rss_mib']:.0f} | |"
    )
    t = f["ours_time_pct"]
    lines += [
        "",
        f"- ours / raw encode: **{f['ratio_vs_raw']:.2f}** by wall clock (target >= 0.9), "
        f"{f['ratio_vs_raw_cpu']:.2f} by CPU time; same vectors (min cosine "
        f"{r['raw']['min_cosine_to_stored']:.5f}, {r['raw']['precision']})",
        f"- our time: embedding {t['embed']:.1f}%, read+parse {t['read_parse']:.1f}%, "
        f"chunking {t['chunk']:.1f}%, catalog+FAISS publish {t['catalog_faiss']:.1f}%, "
        f"other {t['other']:.1f}%",
    ]
    if "ratio_vs_llamaindex" in f:
        lines.append(
            f"- ours / LlamaIndex: **{f['ratio_vs_llamaindex']:.2f}x** chunks/s by wall clock "
            "(target >= 1.5), "
            f"{f['ratio_vs_llamaindex_cpu']:.2f}x by CPU time, {f['ratio_vs_llamaindex_tokens']:.2f}x model "
            f"tokens/s; the same files took {f['ratio_vs_llamaindex_corpus']:.2f}x less time"
        )
    lines.append(
        f"- no-change re-run: **{f['rerun_pct_command']:.1f}%** of the first run as whole commands "
        f"(target < 5%), {f['rerun_pct_pipeline']:.2f}% inside the pipeline (start-up excluded)"
    )
    return "\n".join(lines)


def machine_summary(raw: dict) -> dict:
    """CPU, threads, device and library versions of this run."""
    cores = os.cpu_count()
    summary = f"{platform.processor() or platform.machine()}, {cores} CPUs, device {raw['device']}, "
    summary += f"torch {raw['versions']['torch']} with {raw['torch_threads']} threads"
    return {"summary": summary, "cpus": cores, "python": platform.python_version(), **raw["versions"]}


def run(args: argparse.Namespace) -> int:
    """Fetch the corpus, measure, print the table and write the JSON."""
    try:
        root = corpus.ensure_corpus()
        files = corpus.select_files(root, args.subset, args.limit_files or None)
        subset_files = len(corpus.select_files(root, args.subset))
    except corpus.CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    work = args.out.parent / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results = measure(args, files, work)
    info = {
        "package": corpus.package_version(),
        "subset": args.subset,
        "files": len(files),
        "subset_files": subset_files,
        "megabytes": sum(f.stat().st_size for f in files) / 1e6,
    }
    command = shlex.join([".venv/bin/python", "bench/ingest.py", *sys.argv[1:]])
    result = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "corpus": info}
    result.update(machine=machine_summary(results["raw"]), settings=vars(args) | {"out": str(args.out)})
    result.update(results=results, figures=figures(results), targets=TARGETS)
    result["settings"].pop("files", None)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(table(result))
    print(f"\nwritten: {args.out}  (command: {command})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: the benchmark, or one of its child measurements."""
    args = parse_args(argv)
    if args.mode == "run":
        return run(args)
    result = child_ours(args) if args.mode == "_ours" else child_raw(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
