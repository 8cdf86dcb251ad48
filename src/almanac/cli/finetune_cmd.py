"""`almanac finetune generate | train | eval` and `almanac eval` (adapters: almanac.cli.adapters_cmd).

Services (catalog, retriever, answering stack, evaluator) come from almanac.cli.wiring, imported inside each
handler so that `almanac --help` stays fast and the fine-tuning package never imports the server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from almanac.cli.command_parser import CommandParser, examples
from almanac.cli.finetune_generate import CPU_TEACHER_MINUTES, cmd_generate
from almanac.core.settings import Settings

_GENERATE_EXAMPLES = examples(
    "almanac finetune generate -c handbook --max-chunks 200",
    "almanac finetune generate -c handbook --teacher extractive     # no model: fast, answers copied",
    "almanac finetune generate -c handbook --teacher-url http://localhost:8001/v1 --teacher-model qwen2.5-7b",
)
_TRAIN_EXAMPLES = examples(
    "almanac finetune train --name handbook-v1 --data .almanac/finetune/handbook",
    "almanac finetune train --name handbook-v2 --data .almanac/finetune/handbook --epochs 3 --lr 1e-4",
)
_EVAL_EXAMPLES = examples(
    "almanac eval .almanac/finetune/handbook/test.jsonl -c handbook --adapter handbook-v1 --save"
)


def register(sub: argparse._SubParsersAction[CommandParser]) -> None:
    """Add `finetune` and `eval`."""
    finetune = sub.add_parser(
        "finetune",
        help="generate QA data, train and evaluate LoRA adapters",
        description="Fine-tune the chat model on a collection: generate a QA dataset, train a LoRA adapter\n"
        "on it, evaluate it against the base model, then `almanac adapters promote` it.",
        epilog=examples(
            "almanac finetune generate -c handbook",
            "almanac finetune train --name handbook-v1 --data .almanac/finetune/handbook",
            "almanac finetune eval .almanac/finetune/handbook/test.jsonl -c handbook --adapter handbook-v1",
        ),
    )
    steps = finetune.add_subparsers(
        dest="finetune_command", required=True, metavar="STEP", help="the step to run"
    )
    evaluate = "evaluate base model vs adapter on a QA JSONL"
    generate = "QA dataset from a collection, curated and split"
    _add_generate(steps.add_parser("generate", help=generate, epilog=_GENERATE_EXAMPLES))
    _add_train(
        steps.add_parser("train", help="train a LoRA adapter on a generated dataset", epilog=_TRAIN_EXAMPLES)
    )
    _add_eval(steps.add_parser("eval", help=evaluate, epilog=_EVAL_EXAMPLES))
    _add_eval(sub.add_parser("eval", help=evaluate, epilog=_EVAL_EXAMPLES))


def _add_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--collection", "-c", help="collection to read chunks from (default: ALMANAC_DEFAULT_COLLECTION)"
    )
    p.add_argument("--out", type=Path, help="dataset folder (default: ALMANAC_HOME/finetune/COLLECTION)")
    p.add_argument(
        "--teacher-model",
        help="local model folder or 'smollm2'; with --teacher-url, the endpoint's model name "
        "(default: the chat model)",
    )
    p.add_argument("--teacher-url", help="OpenAI-compatible base URL, e.g. http://localhost:8001/v1")
    p.add_argument(
        "--teacher",
        choices=("auto", "model", "extractive"),
        default="auto",
        help="who writes the questions: 'model' (the teacher model), 'extractive' (spans copied from the "
        "passage, no model), 'auto' (the model, topped up with extractive drafts where its drafts fail the "
        "answer checks; default)",
    )
    p.add_argument(
        "--teacher-minutes",
        type=float,
        help="under --teacher auto, the model's time budget; extractive drafts after it (default: "
        f"{CPU_TEACHER_MINUTES:g} for a model in this process on a CPU, else no limit; 0: no limit)",
    )
    p.add_argument("--teacher-api-key-env", default="OPENAI_API_KEY", help="env var holding the API key")
    p.add_argument("--questions-per-chunk", type=int, default=3, help="teacher questions per chunk")
    p.add_argument("--rows-per-chunk", type=int, default=2, help="lookup questions per database-row chunk")
    p.add_argument("--max-chunks", type=int, help="sample this many chunks, seeded (default: every chunk)")
    p.add_argument(
        "--refusal-fraction",
        type=float,
        default=0.25,
        help="share of questions also asked with unrelated chunks",
    )
    p.add_argument(
        "--sycophancy-fraction",
        type=float,
        default=0.25,
        help="share of questions also asked with a false claim",
    )
    p.add_argument("--top-k", type=int, default=5, help="round-trip retrieval depth and context size")
    p.add_argument(
        "--support-threshold",
        type=float,
        default=0.75,
        help="least share of answer words found in the passage",
    )
    p.add_argument(
        "--duplicate-threshold", type=float, default=0.95, help="cosine at which a question is a duplicate"
    )
    p.add_argument("--max-per-source", type=int, default=4, help="records kept per source chunk at most")
    p.add_argument("--validation", type=float, default=0.1, help="share of documents held out for validation")
    p.add_argument("--test", type=float, default=0.1, help="share of documents held out for testing")
    p.add_argument("--seed", type=int, default=0, help="seed of sampling, fractions and splits")
    p.add_argument(
        "--tool-calls",
        type=int,
        default=0,
        metavar="N",
        help="add up to N API-call examples per `source.table` of server.lookup_tables (each call run)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing dataset folder")
    p.set_defaults(func=cmd_generate)


# flags, type, default, help; each lands on the TrainingConfig field named after its first flag
_HYPERPARAMETERS: list[tuple[tuple[str, ...], type, float | int, str]] = [
    (("--epochs",), float, 2.0, "passes over the training set"),
    (("--max-steps",), int, -1, "optimizer steps; > 0 overrides --epochs"),
    (("--learning-rate", "--lr"), float, 2e-4, "peak learning rate"),
    (("--lora-r",), int, 16, "LoRA rank"),
    (("--lora-alpha",), int, 32, "LoRA scaling numerator (scale = alpha / r)"),
    (("--lora-dropout",), float, 0.0, "dropout on LoRA inputs, in [0, 1)"),
    (("--batch-size",), int, 4, "examples per device step"),
    (("--grad-accum",), int, 1, "steps whose gradients are summed per optimizer step"),
    (("--max-length",), int, 2048, "tokens per example; longer ones are cut at the end"),
    (("--save-steps",), int, 50, "steps between checkpoints (an interrupted run resumes from the last)"),
    (("--seed",), int, 0, "seed of initialization and shuffling"),
]


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="adapter name (folder in ALMANAC_HOME/adapters)")
    p.add_argument("--data", type=Path, help="dataset folder from `finetune generate`")
    p.add_argument("--train", type=Path, help="train JSONL (default: DATA/train.jsonl)")
    p.add_argument("--validation", type=Path, help="validation JSONL (default: DATA/validation.jsonl)")
    p.add_argument("--base-model", help="'smollm2' or a local folder (default: the chat model)")
    for flags, kind, default, text in _HYPERPARAMETERS:
        p.add_argument(*flags, type=kind, default=default, help=text)
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present, else CPU), 'cpu' or 'cuda:0'")
    p.add_argument("--force", action="store_true", help="replace an adapter of the same name")
    p.set_defaults(func=cmd_train)


def _add_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("questions", type=Path, help="QA JSONL (e.g. DATA/test.jsonl or a hand-written set)")
    p.add_argument("--adapter", help="adapter to compare with the base model")
    p.add_argument(
        "--collection",
        "-c",
        help="collection to retrieve from (default: ALMANAC_DEFAULT_COLLECTION, 'default')",
    )
    p.add_argument("-k", type=int, default=5, help="recall@k depth")
    p.add_argument("--out", type=Path, help="report JSON (default: next to the questions)")
    p.add_argument("--save", action="store_true", help="store the summary in the adapter's manifest")
    p.set_defaults(func=cmd_eval)


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train and publish a LoRA adapter."""
    from almanac.core.errors import InputError
    from almanac.finetune.training import TrainingConfig, train_adapter

    train = args.train or (args.data / "train.jsonl" if args.data else None)
    if train is None:
        raise InputError("give --data DATASET_FOLDER (from `almanac finetune generate`) or --train FILE")
    validation = args.validation or (args.data / "validation.jsonl" if args.data else None)
    if validation is not None and validation.is_file() and validation.stat().st_size == 0:
        validation = None  # a small corpus may leave the validation split empty
    fields = [flags[0][2:].replace("-", "_") for flags, _, _, _ in _HYPERPARAMETERS]
    values = {field: getattr(args, field) for field in fields}
    base = args.base_model or settings.chat.model
    config = TrainingConfig(name=args.name, base_model=base, device=args.device, **values)
    result = train_adapter(
        config,
        train,
        validation,
        models_dir=settings.models_dir,
        adapters_dir=settings.adapters_dir,
        force=args.force,
        progress=sys.stderr.isatty(),
    )
    loss = result.manifest.validation_loss
    print(f"adapter {args.name!r} written to {result.folder}")
    print(
        f"train loss {result.train_loss:.4f}, validation loss {'-' if loss is None else f'{loss:.4f}'}, "
        f"{result.tokens_per_second:.0f} tokens/s over {result.runtime_s:.0f} s"
    )
    print(f"next: almanac eval {args.data / 'test.jsonl' if args.data else 'QA.jsonl'} --adapter {args.name}")
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Evaluate the base model (and an adapter) on a QA JSONL."""
    from almanac.cli import wiring
    from almanac.core.errors import InputError
    from almanac.finetune.evaluation import load_questions
    from almanac.finetune.evaluation_report import EvalReport, store_evaluation
    from almanac.finetune.records import file_sha256

    if args.save and not args.adapter:
        raise InputError("--save stores the result in an adapter's manifest; name it with --adapter")
    questions = load_questions(args.questions)
    collection = args.collection or settings.default_collection
    evaluator = wiring.build_evaluator(settings, collection, args.k)
    adapters = [None, args.adapter] if args.adapter else [None]
    rows = evaluator.run(questions, adapters, progress=sys.stderr.isatty())
    report = EvalReport(str(args.questions), file_sha256(args.questions), collection, args.k, rows)
    out = args.out or args.questions.with_name(f"{args.questions.stem}.eval-{args.adapter or 'base'}.json")
    report.save(out)
    print(report.table())
    print(f"report: {out}")
    if args.save:
        store_evaluation(settings.adapters_dir, args.adapter, report.manifest_evaluation(args.adapter))
        print(
            f"evaluation stored in adapter {args.adapter!r}; promote: almanac adapters promote {args.adapter}"
        )
    return 0
