"""Passage units: a chunk's text cut into the pieces the extractive teacher reads questions from.

Whatever the source format (HTML, Markdown, PDF text, plain text), a chunk is lines. Lines that stand alone
keep their shape: a ``key: value`` line or list item, a Markdown table (header and rows), a code signature
(``name(args)``); the other lines are joined into paragraphs (a PDF's hard line breaks do not end a
sentence) and cut into sentences:

    >>> units = passage_units("Hours\\n- Saturday: 10:00\\n| Size | Height |\\n|---|---|\\n| M | 170 |\\n"
    ...                       "The shop opens\\nat 9. It is small.")
    >>> units.pairs, units.table_rows
    ([('Saturday', '10:00')], [{'Size': 'M', 'Height': '170'}])
    >>> units.sentences
    ['Hours', 'The shop opens at 9.', 'It is small.']
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PAIR = re.compile(r"^\s*(?:[-*•]\s+|\d+[.)]\s+)?([A-Z][^:|]{0,60}?[^\s:]):\s+(\S.{0,100}?)\s*\.?$")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?[\s:|-]+\|?\s*$")
_SIGNATURE = re.compile(
    r"^\s*(?:class |def |async def )?([A-Za-z_][\w.]*)\(([^()]*)\)\s*(?:->\s*[^:]+)?:?\s*$"
)
_SENTENCE_END = re.compile(
    r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<!\bvs)(?<=[a-z0-9)\"'’%])[.!?]\s+(?=[A-Z0-9\"'(])"
)
_CODE_LINE = re.compile(r"^\s*(>>>|\.\.\.|[#{}\[\]]|\w+\s*=|import |from \S+ import |return |print\()")
MAX_PAIR_KEY_WORDS = 6
_VERB_WORDS = frozenset({"is", "are", "was", "were", "be", "not", "has", "have", "can", "may", "will"})
_DANGLING = frozenset({"and", "or", "of", "the", "a", "an", "to", "with", "for", "in", "on", "at", "by"})


@dataclass(slots=True)
class Signature:
    """A documented callable: its dotted name, its parameter list and the description that follows it."""

    name: str
    params: str
    line: str
    description: str = ""


@dataclass(slots=True)
class PassageUnits:
    """The pieces of one passage, each in passage order."""

    sentences: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    table_rows: list[dict[str, str]] = field(default_factory=list)
    signatures: list[Signature] = field(default_factory=list)


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph (each keeps its final mark)."""
    parts = _SENTENCE_END.split(paragraph.strip())
    ends = _SENTENCE_END.findall(paragraph.strip())
    out = [part + end.strip() for part, end in zip(parts, ends, strict=False)]
    out += parts[len(ends) :]
    return [s.strip() for s in out if s.strip()]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> list[dict[str, str]]:
    """Rows of a Markdown table as {header: cell}; [] when the first line is not followed by a rule."""
    if len(lines) < 3 or not _TABLE_RULE.match(lines[1]):
        return []
    header = _cells(lines[0])
    rows = [_cells(line) for line in lines[2:]]
    return [dict(zip(header, row, strict=True)) for row in rows if len(row) == len(header) and all(row)]


def _plain_key(key: str) -> bool:
    """A label worth asking about: a few words, no digits (not "Changed in version 3.5"), no URL."""
    words = key.lower().split()
    return (
        len(words) <= MAX_PAIR_KEY_WORDS
        and not any(c.isdigit() for c in key)
        and "//" not in key
        and not _VERB_WORDS & set(words)  # "Normal wear parts are not covered" is a sentence, not a label
    )


def _title(line: str) -> bool:
    """A short heading line of plain text or PDF ("Bicycles", "How to return"): not part of a paragraph."""
    words = line.split()
    return 0 < len(words) <= 5 and line[0].isupper() and not line.endswith((".", ":", ";", ",", "?", "!"))


def _value(text: str) -> str:
    """A pair's value up to its first sentence end; '' when the line break cut it ("..., bar tape and")."""
    value = split_sentences(text)[0].rstrip(".") if text else ""
    return "" if value.split()[-1:] and value.split()[-1].lower() in _DANGLING else value


def passage_units(passage: str) -> PassageUnits:
    """Cut a passage into sentences, key-value pairs, table rows and code signatures."""
    units = PassageUnits()
    paragraph: list[str] = []
    table: list[str] = []
    pending: Signature | None = None  # a signature whose description is the next line

    def flush() -> None:
        if paragraph:
            units.sentences.extend(split_sentences(" ".join(paragraph)))
            paragraph.clear()
        if table:
            units.table_rows.extend(_table(table))
            table.clear()

    lines = passage.splitlines()
    for number, line in enumerate(lines):
        stripped = line.strip()
        following = lines[number + 1].strip() if number + 1 < len(lines) else ""
        if _TABLE_ROW.match(stripped):
            if paragraph:
                flush()
            table.append(stripped)
            continue
        if table:
            flush()
        pair = _PAIR.match(stripped)
        signature = _SIGNATURE.match(stripped)
        described, pending = pending, None
        if signature:
            flush()
            pending = Signature(signature.group(1), signature.group(2), stripped)
            units.signatures.append(pending)
        elif pair and _plain_key(pair.group(1)) and _value(pair.group(2)):
            flush()
            units.pairs.append((pair.group(1), _value(pair.group(2))))
        elif _title(stripped) and not following[:1].islower():
            flush()
            units.sentences.append(stripped)
        elif not stripped or _CODE_LINE.match(stripped):
            flush()
        else:
            if described is not None:
                described.description = split_sentences(stripped)[0]
            paragraph.append(stripped)
    flush()
    return units
