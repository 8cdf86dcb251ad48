"""Streamed text with its citation markers checked as it goes: a marker that points at no source shown is
dropped from the deltas, exactly as `core.prompt.extract_citations` drops it from the final answer.

A marker can arrive split over pieces (``[`` then ``12]``), so a piece that ends inside a possible marker is
held back until the marker closes or turns out not to be one. Only markers are changed in the deltas; the
final answer (the ``done`` event, the last OpenAI chunk's `sources`) also has the spacing before
punctuation tidied, so concatenated deltas can differ from it in white space only.

    >>> f = CitationFilter(n_sources=2)
    >>> [f.feed(p) for p in ["Ada [", "1][", "7] wrote", " it [2"]], f.flush()
    (['Ada ', '[1]', ' wrote', ' it '], '[2')
"""

from __future__ import annotations

import re

from almanac.core.prompt import CITATION, valid_citations

_OPEN_MARKER = re.compile(r"\[[\d,\s]*\Z")  # the start of what may still become [1] or [1, 2]
_MAX_MARKER = 16  # longer than any real marker: stop holding back


class CitationFilter:
    """Feeds pieces in, gets cleaned pieces out; `flush` returns what is still held back at the end."""

    def __init__(self, n_sources: int) -> None:
        self.n_sources = n_sources
        self._held = ""

    def feed(self, piece: str) -> str:
        """The part of `held + piece` that is safe to send, with invalid markers removed."""
        text = self._held + piece
        self._held = ""
        start = text.rfind("[")
        if start >= 0 and len(text) - start <= _MAX_MARKER and _OPEN_MARKER.match(text, start):
            text, self._held = text[:start], text[start:]
        return CITATION.sub(self._keep, text)

    def flush(self) -> str:
        """What is left: an unclosed bracket is plain text, not a marker."""
        held, self._held = self._held, ""
        return held

    def _keep(self, match: re.Match[str]) -> str:
        return "".join(f"[{n}]" for n in valid_citations(match, self.n_sources))
