"""An extractive teacher for the fine-tuning benchmark: QA drafts read off the structure of the Python docs.

Why: the embedded SmolLM2-135M, used as a teacher, rarely writes a correct question/answer pair, so curation
drops nearly everything it produces, and no stronger model may be downloaded. The Python documentation is
regular: every documented object is a signature line (``os.path.basename(path)``) followed by its
description. `DocsIndex` reads those signatures from the HTML pages; `ExtractiveWriter` finds them again in
a chunk's text and turns what follows them *in that chunk* into drafts, so every answer is copied from the
passage the question is about:

- ``which``:   "Which function returns the base name of pathname path?"  -> os.path.basename
- ``raises``:  "What exception does os.path.getmtime raise if the file does not exist?"  -> OSError
- ``version``: "In which Python version was math.cbrt added?"  -> 3.11
- ``default``: "What is the default value of the indent parameter of json.dumps?"  -> None
- ``what``:    "What does heapq.heapify do?"  -> Transform list x into a heap, in-place, in linear time

`ExtractiveWriter.write(passage, n)` has the signature of `almanac.finetune.question_writer.QuestionWriter`,
so `almanac.finetune.generation.Generator` uses it unchanged (refusal and anti-sycophancy records, curation
and the split are the product's). It knows nothing about prose sections: a chunk without a documented
signature yields no draft (counted as nothing, not as unparsable).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict

from finetune_docs_index import MODULE_LEVEL, DocEntry, DocsIndex, Segment, segments

from almanac.finetune.question_writer import QADraft

_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<=[A-Za-z0-9)'\"`])\.\s+(?=\S)")
_VERSION = re.compile(r"New in version (\d+\.\d+)")
_EXCEPTION = re.compile(r"\b([A-Z][A-Za-z]*(?:Error|Exception|Exit|Interrupt))\b")
_PARAM_DEFAULT = re.compile(
    r"(?:^|[(,\[]\s*)\*{0,2}(\w+)=((?:'[^']{0,30}'|\"[^\"]{0,30}\"|[\w.+-]{1,30}))(?=\s*[,)\]])"
)
_RAISES_IF = re.compile(
    r"^(?:It |This function |This method )?[Rr]aises? (?:an? |the )?(\w+) (if|when) (.+)$"
)
_IF_RAISED = re.compile(r"^(If|When) (.+?),? (?:then )?(?:an? |the )?(\w+) (?:is|will be) raised$")
# descriptions that open with one of these verbs become "Which function <verb>s ...?" questions
# fmt: off
_VERBS = frozenset({
    "return", "decode", "encode", "make", "create", "remove", "split", "transform", "generate", "compute",
    "open", "copy", "convert", "push", "print", "determine", "add", "perform", "write", "pop", "normalize",
    "change", "rename", "serialize", "deserialize", "implement", "extend", "insert", "scan", "escape",
    "delete", "get", "divide", "analyze", "test", "construct", "read", "join", "represent", "match", "count",
    "reverse", "rotate", "move", "apply", "update", "display", "compile", "clear", "register", "unpack",
    "unregister", "calculate", "initialize", "shuffle", "associate", "collapse", "merge", "locate", "set",
    "compress", "decompress", "concatenate", "retrieve", "call", "find", "wrap", "fill", "indent", "dedent",
    "shorten", "parse", "format", "sort", "check", "raise", "build", "load", "dump",
})
# fmt: on
_EXCEPTIONS = ("ValueError", "TypeError", "KeyError", "IndexError", "OSError", "RuntimeError")


def first_sentence(text: str) -> str:
    """The first sentence of a paragraph, with its final period."""
    head = _SENTENCE_END.split(text.strip(), maxsplit=1)[0].strip()
    return head if head.endswith((".", ":")) else head + "."


def third_person(verb: str) -> str:
    """return -> returns, match -> matches, apply -> applies (imperative to third person)."""
    low = verb.lower()
    if low.endswith(("s", "sh", "ch", "x", "z", "o")):
        return low + "es"
    if low.endswith("y") and low[-2:-1] not in "aeiou":
        return low[:-1] + "ies"
    return low + "s"


class ExtractiveWriter:
    """QuestionWriter-compatible: drafts from the documented signatures a passage contains."""

    def __init__(self, index: DocsIndex, seed: int = 0) -> None:
        self.index = index
        self.seed = seed

    def write(self, passage: str, n: int, heading: str = "") -> tuple[list[QADraft], int]:
        """Up to `n` drafts, one template type after another, in an order seeded by the passage (the
        heading is not needed: the signatures name what a question is about)."""
        digest = hashlib.sha256(f"{self.seed}\n{passage}".encode()).digest()
        rng = random.Random(digest)
        pools: dict[str, list[QADraft]] = defaultdict(list)
        for segment in segments(passage, self.index):
            for kind, draft in self.drafts(segment, rng):
                pools[kind].append(draft)
        kinds = sorted(pools)
        rng.shuffle(kinds)
        for pool in pools.values():
            rng.shuffle(pool)
        picked: list[QADraft] = []
        while len(picked) < n and any(pools.values()):
            for kind in kinds:
                if pools[kind] and len(picked) < n:
                    picked.append(pools[kind].pop())
        return picked, 0

    def drafts(self, segment: Segment, rng: random.Random) -> list[tuple[str, QADraft]]:
        """Every draft one segment supports, tagged with its template."""
        out: list[tuple[str, QADraft]] = []
        description = first_sentence(segment.lines[0]) if segment.lines else ""
        if 3 <= len(description.split()) <= 40 and description[0].isupper():
            out += [("which", d) for d in [self.which(segment, description, rng)] if d]
            out.append(("what", self.what(segment, description, rng)))
        out += [("raises", d) for d in self.raises(segment, rng)]
        out += [("version", d) for d in [self.version(segment)] if d]
        out += [("default", d) for d in self.defaults(segment)]
        return out

    def _sibling(self, entry: DocEntry, rng: random.Random) -> DocEntry | None:
        siblings = self.index.siblings(entry)
        return rng.choice(siblings) if siblings else None

    def which(self, segment: Segment, description: str, rng: random.Random) -> QADraft | None:
        """'Which function returns ...?' -> the name; only for descriptions that open with a verb."""
        verb, _, rest = description.rstrip(".:").partition(" ")
        base = verb.lower()[:-1] if verb.lower().endswith("s") else verb.lower()
        if not rest or not verb[0].isupper() or (verb.lower() not in _VERBS and base not in _VERBS):
            return None
        entry = segment.entry
        noun = entry.kind if entry.kind in MODULE_LEVEL else f"{entry.name.split('.')[0]} {entry.kind}"
        verb3 = verb.lower() if verb.lower() not in _VERBS else third_person(verb)
        sibling = self._sibling(entry, rng)
        return QADraft(
            question=f"Which {noun} {verb3} {rest}?",
            answer=entry.name,
            rationale=f"The documentation of {entry.name} says: {description}",
            wrong_answer=sibling.name if sibling else f"{entry.name}_ex",
        )

    def what(self, segment: Segment, description: str, rng: random.Random) -> QADraft:
        """'What does X do?' -> the description sentence."""
        entry = segment.entry
        ask = "What does {} do?" if entry.kind in ("function", "method") else "What is {}?"
        sibling = self._sibling(entry, rng)
        return QADraft(
            question=ask.format(entry.name),
            answer=description.rstrip(".:"),
            rationale=f"{entry.name} is documented with the signature {segment.signature}.",
            wrong_answer=f"the same as {sibling.name}" if sibling else "nothing",
        )

    def raises(self, segment: Segment, rng: random.Random) -> list[QADraft]:
        """'What exception does X raise if ...?' from sentences like 'Raises KeyError if ...'."""
        drafts = []
        for sentence in _SENTENCE_END.split(segment.text):
            sentence = sentence.strip().rstrip(".")
            if (m := _RAISES_IF.match(sentence)) and _EXCEPTION.fullmatch(m.group(1)):
                exception, condition = m.group(1), f"{m.group(2)} {m.group(3)}"
            elif (m := _IF_RAISED.match(sentence)) and _EXCEPTION.fullmatch(m.group(3)):
                exception, condition = m.group(3), f"{m.group(1).lower()} {m.group(2)}"
            else:
                continue
            if len(condition.split()) > 20:
                continue
            wrong = rng.choice([e for e in _EXCEPTIONS if e != exception])
            drafts.append(
                QADraft(
                    question=f"What exception does {segment.entry.name} raise {condition}?",
                    answer=exception,
                    rationale=f"The documentation of {segment.entry.name} says: {sentence}.",
                    wrong_answer=wrong,
                )
            )
        return drafts

    def version(self, segment: Segment) -> QADraft | None:
        """'In which Python version was X added?' from 'New in version 3.8.'."""
        match = _VERSION.search(segment.text)
        if match is None:
            return None
        major, minor = match.group(1).split(".")
        wrong = f"{major}.{int(minor) + 1 if int(minor) < 11 else int(minor) - 1}"
        return QADraft(
            question=f"In which Python version was {segment.entry.name} added?",
            answer=match.group(1),
            rationale=f"The entry for {segment.entry.name} says: New in version {match.group(1)}.",
            wrong_answer=wrong,
        )

    def defaults(self, segment: Segment) -> list[QADraft]:
        """'What is the default value of the P parameter of X?' from ``P=VALUE`` in the signature."""
        if segment.entry.kind not in ("function", "method", "class"):
            return []
        drafts = []
        for name, value in _PARAM_DEFAULT.findall(segment.signature):
            wrong = {"True": "False", "False": "True", "None": "0"}.get(value, "None")
            drafts.append(
                QADraft(
                    question=f"What is the default value of the {name} parameter of {segment.entry.name}?",
                    answer=value,
                    rationale=f"The signature {segment.signature} gives {name}={value}.",
                    wrong_answer=wrong,
                )
            )
        return drafts
