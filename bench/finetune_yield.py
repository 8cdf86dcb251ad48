"""Fine-tuning data yield: kept / generated per record kind and per teacher, on the Python docs and on the
bundled samples (documents and database rows).

    .venv/bin/python bench/finetune_yield.py --max-chunks 20                       # every teacher
    .venv/bin/python bench/finetune_yield.py --teachers extractive --max-chunks 200  # no model: seconds

For each corpus and each teacher (`auto`: the embedded chat model topped up by the extractive teacher, the
default of `almanac finetune generate`; `model`: the chat model alone, its prompt showing a worked example
from the corpus; `extractive`: no model), generate from a seeded sample of chunks and curate exactly as
`almanac finetune generate` does (product code: Generator, curate), then print generated, kept and dropped
per reason, the yield per kind and per teacher, and a sample of kept pairs. Corpora are ingested with
`almanac ingest` / `almanac ingest-db` into their own ALMANAC_HOME under bench/out/yield/ (chunks of 128
tokens, overlap 24, as bench/finetune.py). The Python docs come from bench/corpus.py (the Debian package
python3.11-doc, fetched with apt-get once). Everything goes to bench/out/yield/yield.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from corpus import ensure_corpus, package_version  # noqa: E402

PAGES = ["os.path", "json", "math", "shutil", "heapq", "secrets", "textwrap", "bisect", "csv", "statistics"]
TOP_K = 3  # as bench/finetune.py


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Flags."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teachers", default="extractive,model,auto", help="comma-separated teachers to run")
    p.add_argument("--corpora", default="pydocs,samples", help="comma-separated: pydocs, samples")
    p.add_argument("--max-chunks", type=int, default=20, help="seeded sample of chunks per corpus")
    p.add_argument("--questions-per-chunk", type=int, default=3)
    p.add_argument("--out", type=Path, default=BENCH / "out" / "yield")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def configure(out: Path) -> Any:
    """Environment for this process and the ingest children, then Settings."""
    os.environ.update(
        ALMANAC_HOME=str(out / "home"),
        ALMANAC_CHUNKING__SIZE_TOKENS="128",
        ALMANAC_CHUNKING__OVERLAP_TOKENS="24",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    from almanac.core.settings import Settings

    return Settings()


def almanac(*args: str) -> None:
    """Run the CLI as a user does; stop on failure."""
    done = subprocess.run([sys.executable, "-m", "almanac.cli.main", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"almanac {' '.join(args[:2])} failed: {done.stderr[-2000:]}")


def ingest(out: Path, corpus: str) -> dict[str, Any]:
    """Ingest a corpus into its collection once (a marker file records it)."""
    marker = out / f"ingested-{corpus}"
    if corpus == "pydocs":
        files = [ensure_corpus() / "library" / f"{page}.html" for page in PAGES]
        info = {"package": package_version(), "pages": PAGES}
        if not marker.exists():
            almanac("ingest", *map(str, files), "-c", corpus)
    else:
        database = out / "northwind.db"
        info = {"documents": "samples/documents", "tables": ["bikes", "stores"]}
        if not marker.exists():
            subprocess.run(
                [sys.executable, str(ROOT / "samples" / "sample_db.py"), str(database)], check=True
            )
            almanac("ingest", str(ROOT / "samples" / "documents"), "-c", corpus)
            almanac(
                "ingest-db", f"sqlite:///{database}", "--table", "bikes", "--table", "stores", "-c", corpus
            )
    marker.touch()
    return info


def run_one(
    settings: Any, services: dict[str, Any], corpus: str, teacher: str, args: argparse.Namespace
) -> Any:
    """Generate and curate one corpus with one teacher; returns the curation report."""
    from almanac.finetune.curation import CurationConfig, curate
    from almanac.finetune.fallback_writer import build_writer
    from almanac.finetune.generation import GenerationConfig, Generator, pick_chunks

    chunks = list(services["catalog"].iter_chunks(corpus))
    picked = pick_chunks(chunks, args.max_chunks, args.seed)
    chat = None if teacher == "extractive" else services["chat"]()
    writer = build_writer(teacher, chat, chunks, args.seed)
    config = GenerationConfig(questions_per_chunk=args.questions_per_chunk, top_k=TOP_K, seed=args.seed)
    result = Generator(writer, services["retriever"], config).run(picked, corpus, progress=True)
    _, report = curate(
        result.records,
        embedder=services["embedder"],
        retriever=services["retriever"],
        collection=corpus,
        config=CurationConfig(top_k=TOP_K, seed=args.seed),
        unparsable=result.unparsable,
        teachers=result.teachers,
    )
    return report


def main(argv: list[str] | None = None) -> int:
    """Ingest, then generate + curate per corpus and teacher; print and save the yields."""
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = configure(args.out)
    from almanac.cli import wiring
    from almanac.core.errors import ModelError
    from almanac.finetune.teacher import build_teacher

    catalog = wiring.open_catalog(settings)
    embedder = wiring.build_embedder(settings)
    services = {
        "catalog": catalog,
        "embedder": embedder,
        "retriever": wiring.build_retriever(settings, catalog, embedder),
        "chat": functools.cache(lambda: build_teacher(settings)),  # loaded once, only if a run needs it
    }
    results: dict[str, Any] = {"max_chunks": args.max_chunks, "seed": args.seed, "runs": []}
    for corpus in args.corpora.split(","):
        info = ingest(args.out, corpus)
        for teacher in args.teachers.split(","):
            try:
                report = run_one(settings, services, corpus, teacher, args)
            except ModelError as exc:  # a teacher that yields nothing is a result, not a crash
                print(f"\n== {corpus} / {teacher}: {exc}")
                results["runs"].append({"corpus": corpus, "teacher": teacher, "error": str(exc), **info})
                continue
            print(f"\n== {corpus} / teacher {teacher}\n{report.table()}")
            results["runs"].append({"corpus": corpus, "teacher": teacher, **info, **asdict(report)})
    path = args.out / "yield.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
