"""`almanac finetune generate`: a curated, split QA dataset from a collection (flags: finetune_cmd.py)."""

from __future__ import annotations

import argparse
import os
import sys

from almanac.core.settings import Settings

CPU_TEACHER_MINUTES = 20.0  # the auto teacher's model budget on a CPU: a run then ends within the hour


def teacher_budget_s(args: argparse.Namespace, settings: Settings) -> float | None:
    """The auto teacher's model time budget: the flag, else CPU_TEACHER_MINUTES for a model in this process
    on a CPU (a whole corpus would take hours), else none."""
    minutes = args.teacher_minutes
    if minutes is None:
        import torch

        on_cpu = settings.chat.device == "cpu" or not torch.cuda.is_available()
        in_process = not args.teacher_url and (args.teacher_model or settings.chat.backend == "transformers")
        minutes = CPU_TEACHER_MINUTES if on_cpu and in_process else 0
    return minutes * 60 if minutes > 0 else None


def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    """Generate, curate and split a QA dataset from a collection."""
    from almanac.cli.wiring import build_embedder, build_retriever, open_catalog
    from almanac.finetune.curation import CurationConfig
    from almanac.finetune.dataset_folder import DatasetFolder, build_dataset
    from almanac.finetune.fallback_writer import build_writer
    from almanac.finetune.generation import GenerationConfig, Generator
    from almanac.finetune.teacher import build_teacher

    collection = args.collection or settings.default_collection
    folder = DatasetFolder(args.out or settings.home / "finetune" / collection)
    catalog = open_catalog(settings)
    chunks = list(catalog.iter_chunks(collection))
    api_key = os.environ.get(args.teacher_api_key_env) if args.teacher_url else None
    extractive_only = args.teacher == "extractive"  # no model is loaded
    teacher = (
        None if extractive_only else build_teacher(settings, args.teacher_model, args.teacher_url, api_key)
    )
    embedder = build_embedder(settings)  # one model load serves retrieval and curation
    retriever = build_retriever(settings, catalog, embedder)
    config = GenerationConfig(
        args.questions_per_chunk,
        args.rows_per_chunk,
        args.max_chunks,
        args.refusal_fraction,
        args.sycophancy_fraction,
        args.top_k,
        args.seed,
    )
    curation = CurationConfig(
        args.support_threshold, args.duplicate_threshold, args.top_k, args.max_per_source, args.seed
    )
    report = build_dataset(
        folder,
        chunks,
        generator=Generator(
            build_writer(
                args.teacher,
                teacher,
                chunks,
                args.seed,
                args.support_threshold,
                teacher_budget_s(args, settings),
            ),
            retriever,
            config,
        ),
        embedder=embedder,
        retriever=retriever,
        collection=collection,
        curation=curation,
        validation=args.validation,
        test=args.test,
        force=args.force,
        progress=sys.stderr.isatty(),
    )
    print(report.table())
    if args.tool_calls:
        from almanac.finetune.tool_call_examples import append_examples

        splits = {name: folder.split(name) for name in ("train", "validation")}
        added = append_examples(
            splits, catalog.source_urls(), settings.server.lookup_tables, args.tool_calls, args.seed
        )
        print(f"API-call examples added: {added}")
    print(f"dataset: {folder.path} (report: {folder.report})")
    return 0
