"""The chunker: sections -> overlapping, token-bounded chunks that never cut inside a word.

Sizes are counted in the embedding model's own tokens, so a chunk always fits the model. Each section is
tokenised once; windows are then cut from the token spans and sliced out of the text by character offsets.
A window ends where a token is followed by whitespace (or the text ends), preferring a sentence or line end
in its second half; only a single word longer than the window is ever split.

    >>> from almanac.core.embedder import RegexTokenizer
    >>> chunks = Chunker(RegexTokenizer(), size_tokens=4, overlap_tokens=1).chunk(
    ...     [Section("one two three four five six", "intro")])
    >>> [(c.ordinal, c.text, c.locator) for c in chunks]
    [(0, 'one two three four', 'intro'), (1, 'four five six', 'intro')]
"""

from __future__ import annotations

import bisect
import hashlib
import logging
from collections.abc import Iterator, Sequence

from almanac.core.errors import ConfigError
from almanac.core.ports import Tokenizer
from almanac.core.types import ChunkDraft, Section

log = logging.getLogger(__name__)

_SENTENCE_END = frozenset(".!?:;")


def chunk_hash(text: str, locator: str) -> str:
    """Content hash of a chunk: sha256 hex of ``locator + "\\n" + text``."""
    return hashlib.sha256(f"{locator}\n{text}".encode()).hexdigest()


class Chunker:
    """Cuts sections into windows of at most `size_tokens` tokens overlapping by about `overlap_tokens`."""

    def __init__(self, tokenizer: Tokenizer, size_tokens: int, overlap_tokens: int) -> None:
        if size_tokens < 1 or not 0 <= overlap_tokens < size_tokens:
            raise ConfigError(
                f"chunk size {size_tokens} and overlap {overlap_tokens} cannot work; set "
                "ALMANAC_CHUNKING__SIZE_TOKENS >= 1 and 0 <= ALMANAC_CHUNKING__OVERLAP_TOKENS < size"
            )
        self.tokenizer = tokenizer
        self.size = size_tokens
        self.overlap = overlap_tokens

    def chunk(self, sections: Sequence[Section]) -> list[ChunkDraft]:
        """Chunks of all sections in order; ordinals run 0..n-1 across the document.

        Consecutive sections with the same locator are joined first; sections under different locators
        are never merged, so every chunk keeps the locator of the text it holds.
        """
        drafts: list[ChunkDraft] = []
        for locator, text in _grouped(sections):
            for piece in self.windows(text):
                drafts.append(ChunkDraft(piece, locator, len(drafts), chunk_hash(piece, locator)))
        return drafts

    def windows(self, text: str) -> Iterator[str]:
        """The chunk texts of one run of text."""
        spans = self.tokenizer.offsets(text)
        n = len(spans)
        if n == 0:
            return
        # cuts[k]: a window may end before token k (k == n: the text end); strong: at a sentence or line end
        cuts = [k for k in range(1, n) if _is_space(text, spans[k - 1][1]) and spans[k][0] >= spans[k - 1][1]]
        cuts.append(n)
        strong = [k for k in cuts if k == n or _ends_sentence(text, spans[k - 1][1])]
        start = 0
        while start < n:
            end = self._window_end(start, cuts, strong)
            yield text[spans[start][0] : spans[end - 1][1]].strip()
            if end >= n:
                return
            start = self._next_start(start, end, cuts)

    def _window_end(self, start: int, cuts: list[int], strong: list[int]) -> int:
        """The last allowed cut within `size` tokens of `start`; a strong one in the second half wins."""
        limit = start + self.size
        best = _last_at_most(strong, limit)
        if best > start + self.size // 2:
            return best
        best = _last_at_most(cuts, limit)
        if best > start:
            return best
        return min(limit, cuts[-1])  # one word longer than the window: the only mid-word cut

    def _next_start(self, start: int, end: int, cuts: list[int]) -> int:
        """The word start nearest after `end - overlap` (always past `start`, never past `end`)."""
        target = max(end - self.overlap, start + 1)
        i = bisect.bisect_left(cuts, target)
        return cuts[i] if i < len(cuts) and cuts[i] <= end else end


def _grouped(sections: Sequence[Section]) -> Iterator[tuple[str, str]]:
    """(locator, text) with consecutive same-locator sections joined and blank ones dropped."""
    locator, parts = "", []
    for section in sections:
        if not section.text.strip():
            continue
        if parts and section.locator != locator:
            yield locator, "\n\n".join(parts)
            parts = []
        locator = section.locator
        parts.append(section.text)
    if parts:
        yield locator, "\n\n".join(parts)


def _is_space(text: str, at: int) -> bool:
    return at >= len(text) or text[at].isspace()


def _ends_sentence(text: str, at: int) -> bool:
    """The token ending at `at` closes a sentence or a line."""
    return at >= len(text) or text[at] == "\n" or (at > 0 and text[at - 1] in _SENTENCE_END)


def _last_at_most(sorted_values: list[int], limit: int) -> int:
    i = bisect.bisect_right(sorted_values, limit)
    return sorted_values[i - 1] if i else -1
