"""The default teacher (`--teacher auto`): the chat model, with the extractive teacher as its fallback.

The rule, per passage: the model's drafts are checked at once with the cheap answer checks that curation
applies later (the answer is copied from the passage: `answer_support` >= the support threshold; its shape
fits the question's wh-word: almanac.finetune.answer_checks.type_fits). For every model draft that fails,
or is missing (an unusable reply), the extractive teacher adds one draft about the same passage whose
question the model did not ask, so a passage yields up to `n` usable drafts whoever wrote them. The failing
model drafts are still passed on, so curation counts their rejections per reason and the report's yield per
teacher is honest.

A time budget (`budget_s`) bounds the model's share: once the model has spent it, every further passage
gets extractive drafts only, so a CPU run over a whole corpus still ends (the 1.5B model drafts a chunk in
most of a minute on 2 cores). The report's yield per teacher shows how the work was shared.

`build_writer` is the composition the CLI uses for `--teacher model|extractive|auto`; the model's prompt
shows a worked example taken from the corpus itself (extractive drafts about another chunk,
`corpus_examples`), which shows a small model what a good question about *this* corpus looks like.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence

from almanac.core.errors import InputError
from almanac.core.ports import ChatModel
from almanac.core.types import ChunkRecord
from almanac.finetune.answer_checks import type_fits
from almanac.finetune.curation import answer_support
from almanac.finetune.extractive_teacher import ExtractiveTeacher
from almanac.finetune.question_writer import DraftWriter, Example, QADraft, QuestionWriter

log = logging.getLogger(__name__)
TEACHERS = ("auto", "model", "extractive")
MAX_EXAMPLE_CHARS = 700  # a worked example longer than this costs more prompt time than it teaches


def passes(draft: QADraft, passage: str, support_threshold: float) -> bool:
    """The cheap answer checks: grounded in the passage and of the type the question asks for."""
    grounded = answer_support(draft.answer, passage) >= support_threshold
    return grounded and type_fits(draft.question, draft.answer)


class FallbackWriter:
    """Question writer: the model's drafts, topped up with extractive ones (see the module docstring)."""

    def __init__(
        self,
        model: DraftWriter,
        fallback: DraftWriter,
        support_threshold: float = 0.75,
        budget_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self.fallback = fallback
        self.support_threshold = support_threshold
        self.budget_s, self.clock, self.spent_s = budget_s, clock, 0.0

    def write(self, passage: str, n: int, heading: str = "") -> tuple[list[QADraft], int]:
        """The model's drafts plus one extractive draft for each model draft that failed or is missing;
        extractive drafts only once the model's time budget is spent."""
        if self.budget_s is not None and self.spent_s >= self.budget_s:
            return self.fallback.write(passage, n, heading)
        started = self.clock()
        drafts, unparsable = self.model.write(passage, n, heading)
        self.spent_s += self.clock() - started
        if self.budget_s is not None and self.spent_s >= self.budget_s:
            log.info("teacher model budget spent seconds=%.0f; extractive drafts from here on", self.spent_s)
        good = sum(passes(d, passage, self.support_threshold) for d in drafts[:n])
        if good >= n:
            return drafts, unparsable
        asked = {d.question.strip().lower() for d in drafts}
        extra, _ = self.fallback.write(passage, n + len(asked), heading)
        fresh = [d for d in extra if d.question.strip().lower() not in asked]
        return drafts + fresh[: n - good], unparsable


def corpus_examples(
    chunks: Sequence[ChunkRecord], teacher: ExtractiveTeacher, count: int = 3, seed: int = 0
) -> list[Example]:
    """Up to `count` worked examples (passage, heading, two drafts) from seeded document chunks."""
    order = [c for c in chunks if c.kind == "document" and len(c.text) <= MAX_EXAMPLE_CHARS]
    random.Random(seed).shuffle(order)
    examples: list[Example] = []
    for chunk in order:
        drafts, _ = teacher.write(chunk.text, 2, chunk.locator)
        # a shown wrong answer equal to the answer teaches the model to copy it (no anti-sycophancy twin)
        distinct = all(d.wrong_answer.strip().lower() != d.answer.strip().lower() for d in drafts)
        if len(drafts) == 2 and distinct and all(type_fits(d.question, d.answer) for d in drafts):
            examples.append((chunk.text, chunk.locator, drafts))
        if len(examples) >= count:
            break
    return examples


def build_writer(
    choice: str,
    chat: ChatModel | None,
    chunks: Sequence[ChunkRecord],
    seed: int = 0,
    support_threshold: float = 0.75,
    budget_s: float | None = None,
) -> DraftWriter:
    """The question writer `--teacher` names; `chat` may be None only for 'extractive'; `budget_s` bounds
    the model's time under 'auto'."""
    extractive = ExtractiveTeacher(seed)
    if choice == "extractive":
        return extractive
    if chat is None:
        raise InputError(f"--teacher {choice} needs a chat model; pass one or use --teacher extractive")
    model = QuestionWriter(chat, examples=corpus_examples(chunks, extractive, seed=seed))
    return model if choice == "model" else FallbackWriter(model, extractive, support_threshold, budget_s)
