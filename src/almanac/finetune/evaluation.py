"""Evaluation: a QA JSONL through the real retrieval and answering, base model against an adapter.

Each line needs a ``question``; ``answer`` (the gold short answer), ``kind`` (qa, row, sycophancy, refusal;
default qa, or refusal when ``answerable`` is false), and the gold source as ``source_chunk_id`` or
``source`` (a document path or row URI) are optional. Generated records (records.QARecord) qualify as
they are; a hand-written line can be as small as ``{"question": "...", "answer": "...", "source": "a.html"}``.

Per question: retrieval rank of the gold source (recall@k, MRR); the reply's exact match, containment and
token F1 against the gold answer (qa, row); refusal for unanswerable questions; for false user claims
(sycophancy), resistance = the reply contains the true answer and does not open by agreeing. A generated
refusal record is answerable from the corpus, so it is asked over its stored context (the prompt
it trained on) through the chat model rather than through retrieval. ``score`` is the share of questions
passed (contains match, refusal, or resistance by kind): the number `promote` compares.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from almanac.core.errors import InputError
from almanac.core.ports import ChatModel
from almanac.core.prompt import build_answer_messages
from almanac.finetune.answer_metrics import agrees, contains_match, exact_match, is_refusal, token_f1
from almanac.finetune.ports import Answerer, Retriever
from almanac.finetune.records import KINDS, SourceRef, iter_json_lines

log = logging.getLogger(__name__)

MAX_QUESTIONS = 100_000


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    """One question to evaluate and what counts as right."""

    question: str
    answer: str = ""
    kind: str = "qa"
    source_chunk_id: int | None = None
    source: str | None = None
    false_claim: str = ""
    context: tuple[SourceRef, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalQuestion:
        """Parse one line leniently; raises ValueError when it cannot be evaluated."""
        kind = data.get("kind") or ("refusal" if data.get("answerable") is False else "qa")
        if kind not in KINDS or not str(data.get("question", "")).strip():
            raise ValueError(f"needs a question and a kind among {', '.join(KINDS)}")
        if kind != "refusal" and not str(data.get("answer", "")).strip():
            raise ValueError("an answerable question needs its gold answer")
        chunk = data.get("source_chunk_id")
        context = tuple(
            SourceRef(int(r["chunk_id"]), str(r["origin"]), str(r["text"])) for r in data.get("context") or []
        )
        return cls(
            question=str(data["question"]),
            answer=str(data.get("answer", "")),
            kind=kind,
            source_chunk_id=int(chunk) if chunk is not None else None,
            source=str(data["source"]) if data.get("source") else None,
            false_claim=str(data.get("false_claim", "")),
            context=context if kind == "refusal" else (),
        )


def load_questions(path: Path) -> list[EvalQuestion]:
    """Every question of a JSONL file; a bad line raises InputError naming it."""
    questions = []
    for number, data in iter_json_lines(path):
        try:
            questions.append(EvalQuestion.from_json(data))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}:{number}: not an evaluation question ({exc}); fix the line") from exc
        if len(questions) > MAX_QUESTIONS:
            raise InputError(f"{path} has over {MAX_QUESTIONS} questions; evaluate a sample")
    if not questions:
        raise InputError(f"{path} holds no questions; give a JSONL with one question per line")
    return questions


def gold_rank(question: EvalQuestion, retriever: Retriever, collection: str, k: int) -> int | None:
    """1-based rank of the first hit from the gold source within the top k (None: missed or no gold)."""
    hits = retriever.search(question.question, collection, k)[:k]
    for rank, hit in enumerate(hits, start=1):
        if question.source_chunk_id is not None and hit.chunk_id == question.source_chunk_id:
            return rank
        if question.source_chunk_id is None and question.source and _same_source(hit.source, question.source):
            return rank
    return None


def _same_source(found: str, gold: str) -> bool:
    """A hit's source matches a gold source given as the full path/URI or as its trailing part."""
    return found == gold or found.endswith("/" + gold.lstrip("/"))


def grade(question: EvalQuestion, reply: str) -> dict[str, Any]:
    """The answer metrics of one reply (see the module docstring)."""
    refused = is_refusal(reply)
    graded: dict[str, Any] = {"refused": refused}
    if question.kind == "refusal":
        graded["passed"] = refused
        return graded
    graded |= {
        "exact": exact_match(reply, question.answer),
        "contains": contains_match(reply, question.answer),
        "f1": token_f1(reply, question.answer),
    }
    if question.kind == "sycophancy":
        graded["resisted"] = graded["contains"] and not agrees(reply)
        graded["passed"] = graded["resisted"]
    else:
        graded["passed"] = graded["contains"]
    return graded


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(rows: Sequence[dict[str, Any]], k: int) -> dict[str, Any]:
    """Aggregate per-question rows into the metrics table; a metric with no questions is None."""
    answerable = [r for r in rows if r["kind"] in ("qa", "row")]
    with_gold = [r for r in rows if r["has_gold"]]
    return {
        "questions": len(rows),
        f"recall@{k}": _mean([r["rank"] is not None for r in with_gold]),
        "mrr": _mean([1.0 / r["rank"] if r["rank"] else 0.0 for r in with_gold]),
        "exact_match": _mean([r["exact"] for r in answerable]),
        "contains_match": _mean([r["contains"] for r in answerable]),
        "token_f1": _mean([r["f1"] for r in answerable]),
        "refusal_accuracy": _mean([r["refused"] for r in rows if r["kind"] == "refusal"]),
        "false_claim_resistance": _mean([r["resisted"] for r in rows if r["kind"] == "sycophancy"]),
        "over_refusal": _mean([r["refused"] for r in rows if r["kind"] != "refusal"]),
        "score": _mean([r["passed"] for r in rows]),
    }


class Evaluator:
    """Asks the answerer (the chat model for stored-context refusals) each question and grades the reply."""

    def __init__(
        self,
        answerer: Answerer,
        retriever: Retriever,
        collection: str,
        k: int = 5,
        chat: ChatModel | None = None,
        max_tokens: int = 256,
    ) -> None:
        self.answerer, self.retriever, self.collection = answerer, retriever, collection
        self.k, self.chat, self.max_tokens = k, chat, max_tokens

    def reply(self, question: EvalQuestion, adapter: str | None) -> str:
        """The reply to one question with the adapter (None: the base model)."""
        if question.context and self.chat is not None:
            messages = build_answer_messages(
                question.question, [(r.origin, r.text) for r in question.context]
            )
            return self.chat.complete(messages, self.max_tokens, adapter=adapter).text
        return self.answerer.answer(question.question, self.collection, adapter).text

    def run(
        self, questions: Sequence[EvalQuestion], adapters: Sequence[str | None], progress: bool = True
    ) -> dict[str, list[dict[str, Any]]]:
        """Per-question rows per adapter (keyed 'base' for None); retrieval is ranked once per question."""
        rows: dict[str, list[dict[str, Any]]] = {_label(a): [] for a in adapters}
        for question in tqdm(questions, desc="eval", unit="question", disable=not progress):
            gold = question.source_chunk_id is not None or bool(question.source)
            has_gold = gold and question.kind != "refusal"  # a refusal has nothing to retrieve
            rank = gold_rank(question, self.retriever, self.collection, self.k) if has_gold else None
            for adapter in adapters:
                reply = self.reply(question, adapter)
                base = {"question": question.question, "kind": question.kind, "gold": question.answer}
                row = base | {"has_gold": has_gold, "rank": rank, "reply": reply}
                rows[_label(adapter)].append(row | grade(question, reply))
        return rows


def _label(adapter: str | None) -> str:
    return adapter if adapter is not None else "base"
