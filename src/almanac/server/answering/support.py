"""Citations checked for support: each sentence of an answer is attributed to the sources that support it.

A small reader often writes no ``[n]`` at all, or cites the wrong source. So the server does not trust the
markers: a claim is supported by a source when most of the claim's content words occur in it (lexical
support, which catches codes, numbers and names exactly), or, failing that, when the claim's embedding is
close to one of the source's sentences (paraphrases). `cited` is then the sources that support the answer,
the model's own valid markers first; a claim no source supports is reported (`supported: false`), and a
supported claim the model left unmarked gets its markers (`with_markers`).

    >>> content_words("The value is [2] os.path.basename, of course.")
    ['value', 'os.path.basename', 'course']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from almanac.core.ports import Embedder
from almanac.core.prompt import CITATION, is_refusal
from almanac.server.answering.focus import split_sentences

_WORD = re.compile(r"[\w][\w.\-/:]*[\w]|\w", re.UNICODE)
_STOP_WORDS = (
    "a an the is are was were be been of to in on at by for with from as and or not no it its this that "
    "these those there which what who whom when where why how does do did can could may might will would "
    "shall should has have had than then so such into about over under per via source sources answer "
    "according provided see also called named known given"
)
_STOP = frozenset(_STOP_WORDS.split(" "))
LEXICAL_SUPPORT = 0.7  # share of a claim's content words found in the source
SEMANTIC_SUPPORT = 0.75  # cosine between the claim and a source sentence (MiniLM)


def content_words(text: str) -> list[str]:
    """Lower-cased words of `text` without citation markers and stop words."""
    words = _WORD.findall(CITATION.sub(" ", text).lower())
    return [w.strip(".:/-") for w in words if w not in _STOP and w.strip(".:/-")]


@dataclass(frozen=True, slots=True)
class Claim:
    """One sentence of the answer and the sources (1-based) that support it."""

    text: str
    sources: list[int]

    @property
    def supported(self) -> bool:
        """Whether any source supports the claim."""
        return bool(self.sources)

    def as_json(self) -> dict[str, object]:
        """{text, sources, supported} for the response."""
        return {"text": self.text, "sources": self.sources, "supported": self.supported}


@dataclass(frozen=True, slots=True)
class Support:
    """The answer's claims, the sources it cites (model's valid markers first, then attributed ones)."""

    claims: list[Claim]
    cited: list[int]
    refused: bool = False  # the answer says the sources do not answer

    @property
    def supported(self) -> bool:
        """True when every claim has a supporting source (a refusal has no claims)."""
        return all(claim.supported for claim in self.claims)

    def with_markers(self, answer: str) -> str:
        """`answer` with ``[n]`` after each supported claim that carries no marker of its own.

        >>> Support([Claim("Tamsin Pool.", [2])], [2]).with_markers("Tamsin Pool.")
        'Tamsin Pool [2].'
        """
        for claim in self.claims:
            if claim.sources and not CITATION.search(claim.text):
                body = claim.text.rstrip(".!?;:")
                marked = body + " " + "".join(f"[{n}]" for n in claim.sources) + claim.text[len(body) :]
                answer = answer.replace(claim.text, marked, 1)
        return answer


class SupportChecker:
    """Attributes answer sentences to the sources shown to the model."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder = embedder

    def check(self, answer: str, sources: Sequence[str], marked: Sequence[int]) -> Support:
        """Claims of `answer` over `sources` (prompt order); `marked` are the model's valid markers."""
        if is_refusal(answer):
            return Support([], list(marked), refused=True)
        if not sources:
            return Support([], list(marked))
        texts = [s.lower() for s in sources]
        claims = [Claim(s, self._lexical(s, texts)) for s in split_sentences(answer)]
        claims = [c for c in claims if content_words(c.text)]  # "[1]." alone claims nothing
        unsupported = [i for i, c in enumerate(claims) if not c.sources]
        if unsupported and self.embedder is not None:
            semantic = self._semantic([claims[i].text for i in unsupported], sources)
            for i, found in zip(unsupported, semantic, strict=True):
                claims[i] = Claim(claims[i].text, found)
        attributed = [n for claim in claims for n in claim.sources]
        cited = list(dict.fromkeys([*[n for n in marked if n in attributed], *attributed]))
        return Support(claims, cited or list(marked))

    @staticmethod
    def _lexical(claim: str, texts: Sequence[str]) -> list[int]:
        words = content_words(claim)
        found = []
        for number, text in enumerate(texts, start=1):
            hits = sum(1 for w in words if w in text)
            if words and hits / len(words) >= LEXICAL_SUPPORT:
                found.append(number)
        return found

    def _semantic(self, claims: Sequence[str], sources: Sequence[str]) -> list[list[int]]:
        assert self.embedder is not None
        pieces = [(n, s) for n, text in enumerate(sources, start=1) for s in split_sentences(text)]
        if not pieces:
            return [[] for _ in claims]
        vectors = self.embedder.embed([*claims, *(s for _, s in pieces)])
        scores = vectors[: len(claims)] @ vectors[len(claims) :].T
        return [
            sorted({pieces[j][0] for j in range(len(pieces)) if row[j] >= SEMANTIC_SUPPORT}) for row in scores
        ]
