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
import functools
import hashlib
import itertools
import logging
from collections.abc import Iterator, Sequence

import numpy as np

from almanac.core.errors import ConfigError
from almanac.core.ports import Tokenizer
from almanac.core.types import ChunkDraft, Section

log = logging.getLogger(__name__)

_SENTENCE_END = np.array([ord(c) for c in ".!?:;"], dtype=np.uint32)


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
        if n <= self.size:  # one window (a table row, a short section): no cut points to find
            yield text[spans[0][0] : spans[-1][1]].strip()
            return
        cuts, strong = _cut_points(text, spans)
        start, prev_end = 0, 0
        while start < n:
            end = self._window_end(start, prev_end, cuts, strong)
            yield text[spans[start][0] : spans[end - 1][1]].strip()
            if end >= n:
                return
            start, prev_end = self._next_start(start, end, cuts), end

    def _window_end(self, start: int, floor: int, cuts: list[int], strong: list[int]) -> int:
        """The last cut within `size` tokens of `start` and past `floor` (the previous window's end);
        a strong cut in the second half of the window wins."""
        limit = start + self.size
        best = _last_at_most(strong, limit)
        if best > max(start + self.size // 2, floor):
            return best
        best = _last_at_most(cuts, limit)
        if best > max(start, floor):
            return best
        return min(limit, cuts[-1])  # one word longer than the window: the only mid-word cut

    def _next_start(self, start: int, end: int, cuts: list[int]) -> int:
        """A word start about `overlap` tokens before `end`, late enough that the next window still
        reaches past `end` by at least one whole word."""
        next_cut = cuts[bisect.bisect_right(cuts, end)]  # the end of the word after `end`
        if self.overlap == 0 or next_cut - end > self.size:
            return end  # no overlap wanted, or the next word alone overflows a window and will be split
        low = max(start + 1, next_cut - self.size)
        target = max(end - self.overlap, low)
        i = bisect.bisect_left(cuts, target)
        if cuts[i] < end:
            return cuts[i]  # at most `overlap` tokens of overlap
        if i > 0 and cuts[i - 1] >= low:
            return cuts[i - 1]  # the word at the boundary is long: overlap a little more than asked
        return end


def _grouped(sections: Sequence[Section]) -> Iterator[tuple[str, str]]:
    """(locator, text) with consecutive same-locator sections joined and blank ones dropped."""
    locator = ""
    parts: list[str] = []
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


def _cut_points(text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Token indices k where a window may end before token k (k == n is the text end): the token before
    ends at whitespace and the next does not start inside it. `strong` is the subset at a sentence or
    line end. Vectorised: this runs over every token of every document."""
    flat = np.fromiter(itertools.chain.from_iterable(spans), dtype=np.int64, count=2 * len(spans))
    starts, ends = flat[0::2], np.clip(flat[1::2], 0, len(text))
    # code points with a whitespace sentinel after the text end, so the end counts as a boundary
    codes = np.append(np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32), 32)
    after, last = codes[ends], codes[np.maximum(ends - 1, 0)]
    ok = np.isin(after, _space_codes())
    ok[:-1] &= starts[1:] >= ends[:-1]
    ok[-1] = True
    strong = ok & ((after == ord("\n")) | np.isin(last, _SENTENCE_END) | (ends == len(text)))
    return (np.flatnonzero(ok) + 1).tolist(), (np.flatnonzero(strong) + 1).tolist()


@functools.cache
def _space_codes() -> np.ndarray:
    """Every code point that str.isspace() accepts (all lie below U+3001)."""
    return np.array([c for c in range(0x3001) if chr(c).isspace()], dtype=np.uint32)


def _last_at_most(sorted_values: list[int], limit: int) -> int:
    i = bisect.bisect_right(sorted_values, limit)
    return sorted_values[i - 1] if i else -1
