"""Evaluation helpers of bench/finetune.py: base vs adapter through the product's evaluator, plus two checks
the product does not make.

- `evaluate` runs a question file exactly as `almanac eval QUESTIONS --adapter NAME` does (the server's
  answering service, no default adapter leaking into 'base') and returns the EvalReport.
- `lenient_contains`: the product's contains-match deletes punctuation, so ``ensure_ascii=True`` becomes the
  single word ``ensureasciitrue`` and does not contain the gold ``True``; this variant turns punctuation into
  spaces. Reported next to the product's figure, never instead of it.
- `by_page_split`: hand-written questions split by whether their page fed the training split or was held out.
- `gold_in_context`: whether the gold answer is in the chunks retrieval shows the model at all.
- `nearest_training_question`: how close each hand-written question comes to a training question (cosine of
  MiniLM embeddings), to show the hand-written set was not copied from the training data.
"""

from __future__ import annotations

import argparse
import json
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import finetune_stages as stages
import numpy as np

from almanac.core.prompt import CITATION
from almanac.core.settings import Settings
from almanac.finetune.evaluation import EvalQuestion, load_questions
from almanac.finetune.evaluation_report import EvalReport
from almanac.finetune.records import QARecord, file_sha256

QUESTIONS = Path(__file__).resolve().parent / "python_docs_questions.jsonl"
_PUNCTUATION_TO_SPACE = str.maketrans(string.punctuation, " " * len(string.punctuation))


def evaluate(
    settings: Settings, questions: Path, adapter: str, collection: str, k: int, max_tokens: int
) -> EvalReport:
    """Base model and `adapter` on the questions, as `almanac eval` runs them."""
    from almanac.cli.wiring import build_evaluator

    evaluator = build_evaluator(settings, collection, k, max_tokens)
    rows = evaluator.run(load_questions(questions), [None, adapter], progress=False)
    return EvalReport(str(questions), file_sha256(questions), collection, k, rows)


def _lenient(text: str) -> str:
    return " ".join(CITATION.sub(" ", text.lower()).translate(_PUNCTUATION_TO_SPACE).split())


def lenient_contains(reply: str, gold: str) -> bool:
    """Whether the gold answer's words appear, in order, in the reply once punctuation is a space."""
    needle = _lenient(gold)
    return bool(needle) and f" {needle} " in f" {_lenient(reply)} "


def lenient_score(rows: Sequence[dict[str, Any]]) -> float:
    """Share passed when answerable questions are graded with `lenient_contains`."""
    passed = [
        r["passed"] if r["kind"] == "refusal" else lenient_contains(r["reply"], r["gold"]) for r in rows
    ]
    return sum(passed) / len(passed) if passed else 0.0


def by_page_split(
    report: EvalReport, questions: Sequence[EvalQuestion], held_out: set[str]
) -> dict[str, dict[str, Any]]:
    """Score per model for answerable questions on training pages vs on held-out pages."""
    out: dict[str, dict[str, Any]] = {}
    for label, rows in report.rows.items():
        groups: dict[str, list[bool]] = {"train_pages": [], "held_out_pages": []}
        for question, row in zip(questions, rows, strict=True):
            if question.kind == "refusal" or not question.source:
                continue
            group = "held_out_pages" if question.source in held_out else "train_pages"
            groups[group].append(bool(row["passed"]))
        out[label] = {name: _share(flags) for name, flags in groups.items()}
        out[label] |= {f"{name}_questions": len(flags) for name, flags in groups.items()}
    return out


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def nearest_training_question(
    questions: Sequence[EvalQuestion], train: Sequence[QARecord], embedder: Any
) -> list[dict[str, Any]]:
    """For each hand-written question, the most similar training question and its cosine."""
    if not train:
        return []
    asked = embedder.embed([q.question for q in questions])
    trained = embedder.embed([r.question for r in train])
    similarity = np.asarray(asked) @ np.asarray(trained).T
    best = similarity.argmax(axis=1)
    return [
        {"question": q.question, "nearest": train[int(j)].question, "cosine": float(similarity[i, j])}
        for i, (q, j) in enumerate(zip(questions, best, strict=True))
    ]


def gold_in_context(
    questions: Sequence[EvalQuestion], retriever: Any, collection: str, k: int
) -> list[bool | None]:
    """Per question, whether its gold answer (read leniently) is in the top-k chunks the model is shown:
    the ceiling on answerable questions for any model behind this retrieval (None: unanswerable)."""
    return [
        None
        if q.kind == "refusal"
        else any(
            lenient_contains(hit.text, q.answer) for hit in retriever.search(q.question, collection, k)[:k]
        )
        for q in questions
    ]


def evaluate_all(
    args: argparse.Namespace, settings: Any, folder: Any, held_out: dict[str, list[str]], clock: Any
) -> dict[str, Any]:
    """(a) the generated test sample and (b) the hand-written questions, base vs adapter."""
    from almanac.finetune.records import read_records

    handwritten = QUESTIONS
    if args.quick:  # a smoke run asks a handful about its own pages
        handwritten = stages.quick_questions(QUESTIONS, folder.path / "handwritten.quick.jsonl")
    results: dict[str, Any] = {}
    reports = {}
    # the hand-written set first: it is the figure the goal is about
    for name, path in (("handwritten", handwritten), ("generated_test", folder.path / "test.sample.jsonl")):
        with clock.stage(f"eval_{name}"):
            reports[name] = report = evaluate(
                settings, path, stages.ADAPTER, stages.COLLECTION, stages.TOP_K, args.eval_max_tokens
            )
        report.save(args.out / f"eval_{name}.json")
        print(f"\n({'a' if name == 'generated_test' else 'b'}) {name}: {path}\n{report.table()}")
        lenient = {label: round(lenient_score(rows), 3) for label, rows in report.rows.items()}
        print(f"score with punctuation read as spaces: {lenient}")
        results[name] = {"summaries": report.summaries, "lenient_score": lenient}
        results[name]["details"] = str(args.out / f"eval_{name}.json")
    questions = load_questions(handwritten)
    held = set(held_out["validation"]) | set(held_out["test"])
    results["handwritten"]["by_page"] = by_page_split(reports["handwritten"], questions, held)
    print(f"hand-written, answerable, by page: {json.dumps(results['handwritten']['by_page'])}")
    from almanac.cli import wiring

    shown = gold_in_context(questions, wiring.build_retriever(settings), stages.COLLECTION, stages.TOP_K)
    answerable = [flag for flag in shown if flag is not None]
    results["handwritten"]["gold_in_context"] = sum(answerable) / len(answerable) if answerable else None
    print(f"hand-written, gold answer in the top {stages.TOP_K} chunks: {sum(answerable)}/{len(answerable)}")
    train = read_records(folder.path / "train.sample.jsonl")
    nearest = nearest_training_question(questions, train, wiring.build_embedder(settings))
    results["handwritten"]["nearest_training_question"] = sorted(nearest, key=lambda n: -n["cosine"])[:8]
    results["handwritten"]["cosine_at_least_0.9"] = sum(n["cosine"] >= 0.9 for n in nearest)
    return results
