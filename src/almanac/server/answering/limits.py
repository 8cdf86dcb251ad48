"""Request limits from settings.server, checked at run time (the schemas only hold absolute caps).

Each check raises LimitError (400) with the limit and the setting that raises it.

    >>> Limits(ServerSettings(max_top_k=10)).top_k(11)
    Traceback (most recent call last):
    ...
    almanac.core.errors.LimitError: top_k 11 is over the server limit of 10 (ALMANAC_SERVER__MAX_TOP_K)
"""

from __future__ import annotations

from almanac.core.errors import LimitError
from almanac.core.settings import ServerSettings


class Limits:
    """The configured limits on questions, top_k and max_tokens."""

    def __init__(self, server: ServerSettings) -> None:
        self.server = server

    def question(self, text: str, field: str = "question") -> str:
        """The text, stripped; LimitError when empty or over max_question_chars."""
        stripped = text.strip()
        if not stripped:
            raise LimitError(f"{field} is empty; send the text to answer or search for")
        if len(stripped) > self.server.max_question_chars:
            raise LimitError(
                f"{field} has {len(stripped)} characters, over the server limit of "
                f"{self.server.max_question_chars} (ALMANAC_SERVER__MAX_QUESTION_CHARS); shorten it"
            )
        return stripped

    def top_k(self, k: int) -> int:
        """k when within 1..max_top_k."""
        if not 1 <= k <= self.server.max_top_k:
            raise LimitError(
                f"top_k {k} is over the server limit of {self.server.max_top_k} (ALMANAC_SERVER__MAX_TOP_K)"
                if k > 0
                else f"top_k must be at least 1, not {k}"
            )
        return k

    def max_tokens(self, n: int) -> int:
        """n when within 1..max_tokens."""
        if not 1 <= n <= self.server.max_tokens:
            raise LimitError(
                f"max_tokens {n} is over the server limit of {self.server.max_tokens} "
                "(ALMANAC_SERVER__MAX_TOKENS)"
                if n > 0
                else f"max_tokens must be at least 1, not {n}"
            )
        return n
