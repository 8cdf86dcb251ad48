"""The documented objects of Python documentation pages, and where a chunk of text shows them.

Sphinx renders every documented object as ``<dl class="py KIND"><dt id="os.path.basename">SIGNATURE</dt>``.
`DocsIndex` collects those signatures; `segments` finds them again in a chunk's plain text (the indexer
keeps a ``<dt>`` as a line of its own) and returns each with the lines that follow it in that chunk.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_SPACE = re.compile(r"\s+")
MODULE_LEVEL = ("function", "class", "exception", "data")


def _squash(text: str) -> str:
    """A signature with all whitespace and pilcrows removed, to match the chunker's rendering."""
    return _SPACE.sub("", text.replace("¶", ""))


@dataclass(frozen=True, slots=True)
class DocEntry:
    """One documented object: its display name, kind (function, method, ...) and page."""

    name: str
    kind: str
    page: str


class DocsIndex:
    """Signatures of the documented objects of some HTML pages, keyed by their squashed text."""

    def __init__(self) -> None:
        self.by_signature: dict[str, list[DocEntry]] = defaultdict(list)
        self.by_page: dict[str, list[DocEntry]] = defaultdict(list)

    @classmethod
    def from_pages(cls, pages: Iterable[Path]) -> DocsIndex:
        """Read every ``<dl class="py KIND">`` signature of the pages."""
        from bs4 import BeautifulSoup

        index = cls()
        for page in pages:
            soup = BeautifulSoup(page.read_bytes(), "lxml")
            for dl in soup.find_all("dl", class_="py"):
                kind = next((c for c in dl.get("class", []) if c != "py"), "")
                terms = dl.find_all("dt", recursive=False)
                ident = next((dt.get("id") for dt in terms if dt.get("id")), None)
                if not ident or not kind:
                    continue
                entry = DocEntry(_display_name(ident, kind), kind, page.name)
                index.by_page[page.name].append(entry)
                for dt in terms:
                    index.by_signature[_squash(dt.get_text())].append(entry)
        return index

    def lookup(self, line: str) -> DocEntry | None:
        """The entry a chunk line is the signature of (None when it is no signature, or ambiguous)."""
        entries = self.by_signature.get(_squash(line), [])
        return entries[0] if len({e.name for e in entries}) == 1 else None

    def siblings(self, entry: DocEntry) -> list[DocEntry]:
        """Other entries of the same kind on the same page (wrong answers for anti-sycophancy)."""
        return [e for e in self.by_page[entry.page] if e.kind == entry.kind and e.name != entry.name]


def _display_name(ident: str, kind: str) -> str:
    """``os.path.basename`` for module-level objects, ``deque.append`` for members of a class."""
    parts = ident.split(".")
    return ident if kind in MODULE_LEVEL or len(parts) < 3 else ".".join(parts[-2:])


@dataclass(frozen=True, slots=True)
class Segment:
    """A signature found in a passage and the lines that follow it up to the next signature."""

    entry: DocEntry
    signature: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The entry's text as far as the passage holds it."""
        return " ".join(self.lines)


def segments(passage: str, index: DocsIndex) -> list[Segment]:
    """Each documented signature in the passage with the description lines after it."""
    lines = [line.strip() for line in passage.splitlines()]
    marks = [(i, index.lookup(line)) for i, line in enumerate(lines) if line]
    starts = [(i, entry) for i, entry in marks if entry is not None]
    found = []
    for number, (i, entry) in enumerate(starts):
        end = starts[number + 1][0] if number + 1 < len(starts) else len(lines)
        body = tuple(line for line in lines[i + 1 : end] if line)
        found.append(Segment(entry, lines[i], body))
    return found
