"""The stages of bench/finetune.py: corpus pages, ingest, generate + curate + split, sample, train.

Each stage calls the product the way a user would: `almanac ingest` in a child process; the product's
Generator, curation, split (build_dataset) and train_adapter in process, so the figures come back as objects.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from corpus import ensure_corpus, package_version

COLLECTION = "pydocs"
ADAPTER = "pydocs-lora"
TOP_K = 3  # retrieval depth, round-trip depth and training context size (server default: 5)
# fmt: off
PAGES = [
    "os.path", "pathlib", "json", "collections", "itertools", "functools", "re", "shutil", "math", "random",
    "statistics", "csv", "textwrap", "glob", "fnmatch", "tempfile", "heapq", "bisect", "copy", "operator",
    "calendar", "gzip", "base64", "uuid", "secrets", "shlex", "pprint", "fractions", "timeit", "string",
]
# fmt: on
QUICK_PAGES = ["os.path", "json", "math", "shutil", "heapq", "secrets"]


def ingest(files: list[Path]) -> dict[str, Any]:
    """`almanac ingest FILES --collection pydocs` in a child process, as a user runs it."""
    command = [sys.executable, "-m", "almanac.cli.main", "ingest", *map(str, files), "-c", COLLECTION]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"ingest failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = done.stdout.strip().splitlines()[-1]
    print(summary)
    return {"pages": len(files), "summary": summary}


def teacher_model(settings: Any) -> str:
    """The default chat model's name (the embedded 1.5B reader): what `almanac finetune generate` asks by
    default, whatever model this run trains (ALMANAC_CHAT__MODEL is the CPU-trainable SmolLM2 here)."""
    return str(type(settings.chat).model_fields["model"].default)


def writer_for(args: argparse.Namespace, settings: Any, files: list[Path], chunks: list[Any]) -> Any:
    """The question writer `--teacher` names: the product's writers exactly as `almanac finetune generate
    --teacher auto|model|extractive` builds them (auto, the default, asks the default chat model), or
    'bench', this benchmark's own Python-docs teacher, kept so its earlier figure stays reproducible."""
    if args.teacher == "bench":
        from finetune_docs_index import DocsIndex
        from finetune_teacher import ExtractiveWriter

        return ExtractiveWriter(DocsIndex.from_pages(files), seed=args.seed)
    from almanac.finetune.fallback_writer import build_writer
    from almanac.finetune.teacher import build_teacher

    chat = None if args.teacher == "extractive" else build_teacher(settings, teacher_model(settings))
    budget = args.teacher_minutes * 60 if args.teacher_minutes > 0 else None
    return build_writer(args.teacher, chat, chunks, args.seed, budget_s=budget)


def page_of(source: str) -> str:
    """The HTML file name of a source path (what the hand-written questions name as their source)."""
    return Path(source).name


def generate(args: argparse.Namespace, settings: Any, files: list[Path]) -> tuple[Any, dict[str, Any]]:
    """Generate, curate and split into the dataset folder; returns it and the curation report."""
    from dataclasses import asdict

    from almanac.cli import wiring
    from almanac.finetune.curation import CurationConfig
    from almanac.finetune.dataset_folder import build_dataset
    from almanac.finetune.generation import GenerationConfig, Generator

    catalog = wiring.open_catalog(settings)
    chunks = list(catalog.iter_chunks(COLLECTION))
    embedder = wiring.build_embedder(settings)
    retriever = wiring.build_retriever(settings, catalog, embedder)
    config = GenerationConfig(questions_per_chunk=3, max_chunks=args.max_chunks, top_k=TOP_K, seed=args.seed)
    folder = dataset_folder(args)
    report = build_dataset(
        folder,
        chunks,
        generator=Generator(writer_for(args, settings, files, chunks), retriever, config),
        embedder=embedder,
        retriever=retriever,
        collection=COLLECTION,
        curation=CurationConfig(top_k=TOP_K, seed=args.seed),
        force=True,
        progress=False,
    )
    print(report.table())
    return folder, {"chunks": len(chunks), "teacher": args.teacher, **asdict(report)}


def dataset_folder(args: argparse.Namespace) -> Any:
    """Where the run's dataset lives."""
    from almanac.finetune.dataset_folder import DatasetFolder

    return DatasetFolder(args.out / "dataset")


def sample(source: Path, target: Path, n: int, seed: int, shares: dict[str, float]) -> dict[str, int]:
    """A seeded sample of `n` records of a JSONL file with the kind mix of `shares` (kind -> share; QA
    records fill the rest and any shortfall), written in file order; returns the count per kind."""
    lines = [line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    kinds = [json.loads(line).get("kind", "qa") for line in lines]
    rng = random.Random(seed)
    keep: list[int] = []
    for kind, share in shares.items():
        pool = [i for i, k in enumerate(kinds) if k == kind]
        keep += rng.sample(pool, min(len(pool), round(n * share)))
    chosen = set(keep)
    rest = [i for i, k in enumerate(kinds) if k not in shares]
    rest = rng.sample(rest, min(len(rest), max(0, n - len(keep))))
    others = [i for i in range(len(lines)) if i not in chosen and i not in set(rest)]  # a shortfall of QA
    keep += rest + rng.sample(others, min(len(others), max(0, n - len(keep) - len(rest))))
    target.write_text("".join(lines[i] + "\n" for i in sorted(keep)), encoding="utf-8")
    return {kind: sum(kinds[i] == kind for i in keep) for kind in sorted(set(kinds))}


def quick_questions(source: Path, target: Path) -> Path:
    """Hand-written questions for --quick: four about its pages and two unanswerable ones."""
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    pages = {f"{page}.html" for page in QUICK_PAGES}
    picked = [r for r in rows if r.get("source") in pages][:4] + [r for r in rows if not r.get("source")][:2]
    target.write_text("".join(json.dumps(r) + "\n" for r in picked), encoding="utf-8")
    return target


def held_out_pages(folder: Any) -> dict[str, list[str]]:
    """Pages whose records went to the validation and test splits (never trained on)."""
    from almanac.finetune.records import read_records

    return {
        name: sorted({page_of(r.source) for r in read_records(folder.split(name))})
        for name in ("validation", "test")
    }


def train(args: argparse.Namespace, settings: Any, data: Path) -> dict[str, Any]:
    """LoRA through the product's train_adapter on the sampled splits."""
    from almanac.finetune.training import TrainingConfig, train_adapter

    config = TrainingConfig(
        name=ADAPTER,
        epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_length=args.max_length,
        save_steps=1000,
        seed=args.seed,
        device="cpu",
    )
    train_path, validation_path = data / "train.sample.jsonl", data / "validation.sample.jsonl"
    lengths = token_lengths(settings, train_path, args.max_length)
    result = train_adapter(
        config,
        train_path,
        validation_path,
        models_dir=settings.models_dir,
        adapters_dir=settings.adapters_dir,
        force=True,
        progress=False,
    )
    return {
        "tokens_per_second": round(result.tokens_per_second, 1),
        "runtime_s": round(result.runtime_s, 1),
        "train_loss": round(result.train_loss, 4),
        "validation_loss": result.manifest.validation_loss,
        "hyperparameters": result.manifest.hyperparameters,
        "example_tokens": lengths,
        "device": "cpu",
        "torch_threads": args.threads,
    }


def files_for(args: argparse.Namespace) -> list[Path]:
    """The HTML pages of the run."""
    library = ensure_corpus() / "library"
    return [library / f"{page}.html" for page in (QUICK_PAGES if args.quick else PAGES)]


def corpus_info(files: list[Path]) -> dict[str, Any]:
    """Which package and pages the corpus is."""
    return {"package": package_version(), "pages": [f.name for f in files]}


def token_lengths(settings: Any, path: Path, max_length: int) -> dict[str, Any]:
    """Tokens per training example (prompt + completion, chat template applied) and how many exceed
    `max_length` (trl cuts those at the end, which would cut the answer trained on)."""
    from transformers import AutoTokenizer

    from almanac.core.model_cache import prepare_model_dir
    from almanac.finetune.records import read_records
    from almanac.finetune.training_set import conversation

    folder = prepare_model_dir(settings.chat.model, settings.models_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    counts = []
    for record in read_records(path):
        row = conversation(record)
        text = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
        counts.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    counts.sort()
    return {
        "examples": len(counts),
        "total": sum(counts),
        "mean": round(sum(counts) / len(counts), 1),
        "max": counts[-1],
        "over_max_length": sum(c > max_length for c in counts),
    }
