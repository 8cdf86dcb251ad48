"""The parsed document every reader returns, the builder that cuts it into sections, and its text rules.

A section closes at each heading; its locator is the path of headings above it:

    >>> out = SectionBuilder()
    >>> out.heading(1, "Guide")
    >>> out.text("Intro   text.")
    >>> out.heading(2, "Install")
    >>> out.text("Run it.")
    >>> [(s.locator, s.text) for s in out.done()], out.first_heading
    ([('Guide', 'Intro text.'), ('Guide > Install', 'Run it.')], 'Guide')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from almanac.core.errors import FileTooLargeError
from almanac.core.types import Section

DEFAULT_MAX_CHARS = 5_000_000  # text one file may yield; settings.ingest.max_text_chars

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_INNER_SPACE = re.compile(r"(?<=\S)[ \t\f\v\u00a0]+")


@dataclass(frozen=True)
class ReadDocument:
    """What a reader returns: the document's title and its non-empty sections in order."""

    title: str
    sections: list[Section]


def strip_control(text: str) -> str:
    """`text` without control characters (tab and newline are kept)."""
    return _CONTROL.sub("", text)


def tidy(text: str) -> str:
    """Normalise whitespace: unix newlines, no control characters, single inner spaces (indentation kept),
    no trailing spaces, at most one blank line in a row."""
    text = strip_control(text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [_INNER_SPACE.sub(" ", line).rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


class SectionBuilder:
    """Collects text under a heading path and closes a section at each heading."""

    def __init__(self) -> None:
        self.path: list[tuple[int, str]] = []
        self.first_heading = ""
        self.lines: list[str] = []
        self.sections: list[Section] = []

    def heading(self, level: int, title: str) -> None:
        """Close the open section and start one under `title`, popping headings of `level` or deeper."""
        title = " ".join(title.split())
        if not title:
            return
        self.flush()
        self.first_heading = self.first_heading or title
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.path.append((level, title))

    def text(self, line: str, code: bool = False) -> None:
        """Add a line to the open section: tidied, or kept as it is for code."""
        self.lines.append(line.strip("\n") if code else tidy(line))

    def flush(self) -> None:
        """Close the open section; one without text is dropped."""
        text = "\n".join(line for line in self.lines if line.strip()).strip("\n")
        if text.strip():
            self.sections.append(Section(text, " > ".join(title for _, title in self.path)))
        self.lines = []

    def done(self) -> list[Section]:
        """Close the open section and return every section in order."""
        self.flush()
        return self.sections


def text_limit_error(name: str, found: str, max_chars: int) -> FileTooLargeError:
    """The one message for a file whose text is over the limit, whatever reader found out."""
    return FileTooLargeError(
        f"{name}: {found} is over the limit of {max_chars} characters per file; split the file "
        "or raise the limit with ALMANAC_INGEST__MAX_TEXT_CHARS"
    )
