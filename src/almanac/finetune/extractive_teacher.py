"""The extractive teacher: QA drafts read off a passage's own text, every answer a span copied from it.

No model is involved, so it is fast, deterministic and never invents an answer; it is the fallback of the
default teacher (see almanac.finetune.fallback_writer) and can be chosen alone (`--teacher extractive`).
It works on any corpus the indexer reads, because it reads shapes, not a format (almanac.finetune.
passage_units cuts a chunk into sentences, key-value lines, table rows and code signatures):

- ``definition``: "Northwind Cycles is a bicycle maker based in Bergen." -> "What is Northwind Cycles?"
  -> "a bicycle maker based in Bergen";
- ``date``: "Northwind Cycles was founded on 14 March 1988 by ..." -> "When was Northwind Cycles founded?",
  "In 1999 the company moved to ..." -> "When did the company move to ...?";
- ``ability``: "Members may borrow at most six volumes." -> "What may members do?";
- ``pair`` (heading + line): "Saturday: 10:00-16:00" under "Bergen" -> 'According to "Bergen", what is
  listed for Saturday?'; ``table``: 'In the table under "Frames", what is the Size for Rider height 150 cm?';
- ``code``: ``heapq.nlargest(n, iterable, key=None)`` + description -> "What does heapq.nlargest do?",
  "Which heapq function returns a list with the n largest elements ...?" (the reverse: the name is the
  answer), "What is the default value of the key parameter of heapq.nlargest?";
- ``row``: a database row -> "What is the price_eur of the bikes with name Storm SL?".

`ExtractiveTeacher.write(passage, n, heading)` has the question writer's signature; the heading is the
chunk's locator (its section path). Which templates are used, and which wrong answers (for the
anti-sycophancy twin) are picked, is seeded by the passage, so a run is repeatable.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict

from almanac.finetune.passage_units import PassageUnits, passage_units
from almanac.finetune.question_writer import QADraft
from almanac.finetune.row_questions import parse_row

_DATE = (
    r"(?:\d{1,2} (?:January|February|March|April|May|June|July|August|September|October|November|December)"
    r" \d{4}|(?:January|February|March|April|May|June|July|August|September|October|November|December)"
    r" (?:\d{1,2}, )?\d{4}|1[5-9]\d\d|20\d\d)"
)
_SUBJECT = r"((?:The |A |An )?[A-Z][\w'’.-]*(?: [\w'’.-]+){0,5}?)"
_PASSIVE = re.compile(rf"^{_SUBJECT} (was|were) ([a-z]+(?:ed|en|t)) (?:in|on) ({_DATE})\b")
_VERBED = r"([a-z]+ed|built|won|made|began|became|sold|held|led)"
_ACTIVE = re.compile(rf"^{_SUBJECT} {_VERBED}(?: (.{{3,80}}?))?,? (?:in|on) ({_DATE})\b")
_LOWER_SUBJECT = r"((?:the |a |an )?[\w'’.-]+(?: [\w'’.-]+){0,5}?)"  # "In 1999 the company moved ..."
_FRONTED = re.compile(rf"^(?:In|On|By) ({_DATE}),? {_LOWER_SUBJECT} {_VERBED} (.{{3,80}}?)[,.;](?!\d)")
_DEFINITION = re.compile(
    rf"^{_SUBJECT} (is|are) ((?:a|an|the) [^,;:()]{{3,120}}?)(?:[,;:(]| that | which |\.$)"
)
_ABILITY = re.compile(rf"^{_SUBJECT} (can|may|must|should) ([a-z][^,;:()]{{5,120}}?)[,;:.(]")
_DEFAULT = re.compile(r"(\w+)=((?:'[^']{0,30}'|\"[^\"]{0,30}\"|[\w.+-]{1,30}))(?=\s*(?:,|$))")
_VERSION = re.compile(r"New in version (\d+(?:\.\d+)+)")
_ROW = re.compile(r"^(?:table: )?[\w.]+ \| [^\n]*$")  # the indexer's one-line row rendering
# first words that do not start a name: pronouns need the passage, conjunctions start a clause
_NOT_SUBJECT = frozenset({
    "you", "we", "it", "they", "this", "these", "that", "those", "he", "she", "i", "there", "and", "but",
    "or", "if", "when", "since", "as", "has", "have", "so", "because", "although", "while", "for", "to",
    "in", "on", "at", "by", "with", "however", "also", "then", "thus", "note", "see", "each", "any", "all",
    "some",
})  # fmt: skip
# first words of a description that are not an imperative verb ("The ...", "Like ...", "Deprecated ...")
_NOT_VERB = _NOT_SUBJECT | frozenset({"the", "a", "an", "like", "deprecated", "new", "changed", "same"})
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_IRREGULAR = {
    "built": "build", "won": "win", "made": "make", "began": "begin", "became": "become", "sold": "sell",
    "held": "hold", "led": "lead",
}  # fmt: skip


_ADD_E = ("v", "c", "g", "ir", "ur", "at", "ut", "iz")  # stems that lost an e: arriv(e)d, creat(e)d


def third_person(verb: str) -> str:
    """ "Return" -> "returns", "Match" -> "matches", "Copy" -> "copies" (a description's imperative)."""
    word = verb.lower()
    if word.endswith(("s", "sh", "ch", "x", "z", "o")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def which_question(name: str, description: str) -> str | None:
    """ "heapq.nlargest" + "Return a list ..." -> "Which heapq function returns a list ...?"; None when
    the description does not open with an imperative verb. A capitalised owner is a class: "method"."""
    verb, _, rest = description.partition(" ")
    if not verb.isalpha() or not verb[0].isupper() or verb.lower() in _NOT_VERB or len(rest.split()) < 2:
        return None
    owner = name.rpartition(".")[0]
    what = "function" if not owner else f"{owner} {'method' if owner[:1].isupper() else 'function'}"
    return f"Which {what} {third_person(verb)} {rest}?"


def base_verb(past: str) -> str:
    """moved -> move, opened -> open, stopped -> stop, carried -> carry, built -> build (a few rules)."""
    if past in _IRREGULAR:
        return _IRREGULAR[past]
    stem = past[:-2]
    if past.endswith("ied"):
        return past[:-3] + "y"
    if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
        return stem[:-1]
    if stem.endswith(_ADD_E) or past.endswith("sed"):  # arrived, retired, used
        return past[:-1]
    return stem


def _named(subject: str) -> bool:
    """Whether a subject names something; a pronoun ("You", "It") needs the passage to be understood."""
    return subject.split(" ", 1)[0].lower() not in _NOT_SUBJECT


def _lower_article(subject: str) -> str:
    """The subject as it reads mid-sentence: "The company" -> "the company", "Members of X" -> "members of
    X", "Customers" -> "customers"; a name ("Ingrid Halvorsen", "Python") keeps its capital."""
    first, _, rest = subject.partition(" ")
    common = rest[:1].islower() or (not rest and first.endswith("s") and not first.endswith("ss"))
    if first in ("The", "A", "An") or (common and not first.isupper()):
        return f"{first.lower()} {rest}".rstrip()
    return subject


def _section(heading: str) -> str:
    """The last part of a section path, or '' when the locator is no heading (a page number, a row key)."""
    last = heading.split(" > ")[-1].strip()
    return "" if not last or re.fullmatch(r"(page|p\.|pages?)\s*[\d-]+|\w+ id=.*", last, re.I) else last


def _wrong(answer: str, others: list[str], rng: random.Random) -> str:
    """A plausible wrong answer: the answer with its number changed, else another span of the passage."""
    match = _NUMBER.search(answer)
    if match:
        value = match.group(0)
        if value.isdigit():
            wrong = str(max(int(value) + rng.choice((-3, -2, 2, 3)), 0))  # 1988 -> 1990
        else:
            wrong = value[:-1] + str((int(value[-1]) + rng.choice((1, 2, 3))) % 10)  # 15.8 -> 15.1
        return answer[: match.start()] + wrong + answer[match.end() :]
    choices = [o for o in others if o.lower() != answer.lower()]
    return rng.choice(choices) if choices else answer


def _sentence_questions(s: str) -> list[tuple[str, str, str, str]]:
    """(template, question, answer, sentence) for the date, definition and ability shapes of a sentence."""
    found = []
    if (m := _PASSIVE.match(s)) and _named(m[1]):
        found.append(("date", f"When {m[2]} {_lower_article(m[1])} {m[3]}?", m[4], s))
    elif (m := _ACTIVE.match(s)) and _named(m[1]):
        rest = f" {m[3]}" if m[3] else ""
        found.append(("date", f"When did {_lower_article(m[1])} {base_verb(m[2])}{rest}?", m[4], s))
    elif (m := _FRONTED.match(s)) and _named(m[2]):
        found.append(("date", f"When did {_lower_article(m[2])} {base_verb(m[3])} {m[4]}?", m[1], s))
    if (m := _DEFINITION.match(s)) and _named(m[1]):
        found.append(("definition", f"What {m[2]} {_lower_article(m[1])}?", m[3].strip(), s))
    if (m := _ABILITY.match(s)) and _named(m[1]):
        found.append(("ability", f"What {m[2]} {_lower_article(m[1])} do?", m[3].strip(), s))
    return found


class ExtractiveTeacher:
    """Question-writer compatible: drafts whose answers are copied from the passage (see module docstring)."""

    name = "extractive"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def write(self, passage: str, n: int, heading: str = "") -> tuple[list[QADraft], int]:
        """Up to `n` drafts, one template after another in a seeded order; never unparsable."""
        rng = random.Random(hashlib.sha256(f"{self.seed}\n{passage}".encode()).digest())
        pools: dict[str, list[QADraft]] = defaultdict(list)
        for template, draft in self.candidates(passage, heading, rng):
            pools[template].append(draft)
        order = sorted(pools)
        rng.shuffle(order)
        for pool in pools.values():
            rng.shuffle(pool)
        picked: list[QADraft] = []
        while len(picked) < n and any(pools.values()):
            picked += [pools[t].pop() for t in order if pools[t]][: n - len(picked)]
        return picked, 0

    def candidates(self, passage: str, heading: str, rng: random.Random) -> list[tuple[str, QADraft]]:
        """Every (template, draft) the passage supports."""
        row = parse_row(passage) if _ROW.match(passage.strip()) else None
        if row is not None:
            return [("row", self._draft(q, a, passage, [], rng)) for _, q, a in row.questions()]
        units = passage_units(passage)
        found = self._sentences(units, rng) + self._pairs(units, _section(heading), rng)
        return found + self._code(units, passage, rng)

    def _draft(
        self, question: str, answer: str, evidence: str, others: list[str], rng: random.Random
    ) -> QADraft:
        rationale = evidence if len(evidence) <= 300 else evidence[:297] + "..."
        return QADraft(question, answer, rationale, _wrong(answer, others, rng), teacher=self.name)

    def _sentences(self, units: PassageUnits, rng: random.Random) -> list[tuple[str, QADraft]]:
        found = [item for s in units.sentences for item in _sentence_questions(s)]
        answers = {t: [a for tt, _, a, _ in found if tt == t] for t, _, _, _ in found}
        return [(t, self._draft(q, a, s, answers[t], rng)) for t, q, a, s in found if len(a.split()) <= 20]

    def _pairs(self, units: PassageUnits, section: str, rng: random.Random) -> list[tuple[str, QADraft]]:
        where = f'According to "{section}", ' if section else "According to the source, "
        values = [v for _, v in units.pairs]
        drafts = [
            ("pair", self._draft(f"{where}what is listed for {key}?", value, f"{key}: {value}.", values, rng))
            for key, value in units.pairs
        ]
        table = f'In the table under "{section}", ' if section else "In the table, "
        for row in units.table_rows:
            (first, name), *cells = row.items()
            for column, cell in cells:
                question = f"{table}what is the {column} for {first} {name}?"
                others = [r[column] for r in units.table_rows]
                evidence = f"{first} {name}: {column} {cell}."
                drafts.append(("table", self._draft(question, cell, evidence, others, rng)))
        return drafts

    def _code(self, units: PassageUnits, passage: str, rng: random.Random) -> list[tuple[str, QADraft]]:
        names = [s.name for s in units.signatures]
        drafts = []
        for sig in units.signatures:
            description = re.split(r"(?<=\.)\s", sig.description.strip("'\""))[0].rstrip(".")
            if 3 <= len(description.split()) <= 40:
                ask = "What is {}?" if sig.line.startswith("class ") else "What does {} do?"
                others = [f"the same as {name}" for name in names if name != sig.name] or [description]
                draft = QADraft(ask.format(sig.name), description, sig.line, rng.choice(others), self.name)
                drafts.append(("code", draft))
                reverse = None if sig.line.startswith("class ") else which_question(sig.name, description)
                if reverse:  # wrong: another name documented here (none: the same, so no false-claim twin)
                    wrong = rng.choice([n for n in names if n != sig.name] or [sig.name])
                    drafts.append(("code_name", QADraft(reverse, sig.name, sig.line, wrong, self.name)))
            for param, value in _DEFAULT.findall(sig.params):
                question = f"What is the default value of the {param} parameter of {sig.name}?"
                wrong = {"True": "False", "False": "True", "None": "0"}.get(value, "None")
                drafts.append(("code", QADraft(question, value, sig.line, wrong, self.name)))
        if (m := _VERSION.search(passage)) and len(units.signatures) == 1:
            question = f"In which version was {names[0]} added?"
            drafts.append(("code", self._draft(question, m[1], m[0] + ".", [], rng)))
        return drafts
