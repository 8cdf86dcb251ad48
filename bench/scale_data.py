"""The scale benchmark's source table: N shipments drawn (seeded) from pycountry's ISO data, in SQLite.

    path = shipments_table(Path("bench/data/scale"), 1_000_000)   # built once, then reused (~12 s for 1M)
    queries(200, seed=7)                                           # ["Norway Krone", ...]

Table ``shipments(id INTEGER PRIMARY KEY, country, region, currency, language, weight_kg, shipped_on,
note)``: a country, one of its subdivisions, a currency, a language, a weight, a date and a one-line note
that ends with the row's own reference (``ref SH0001234``), so one query finds exactly one row by BM25.
The file is written under a temporary name and renamed when whole; a run copies it before changing rows.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pycountry

TABLE = "shipments"
SCHEMA = (
    f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, country TEXT NOT NULL, region TEXT NOT NULL, "
    "currency TEXT NOT NULL, language TEXT NOT NULL, weight_kg REAL NOT NULL, shipped_on TEXT NOT NULL, "
    "note TEXT NOT NULL)"
)
GOODS = (
    "coffee beans", "machine parts", "textiles", "medical supplies", "books", "solar panels", "olive oil",
    "bicycles", "ceramics", "spare tyres", "laptops", "seeds", "wool", "glassware", "timber", "tea",
)  # fmt: skip
STATES = ("fragile", "refrigerated", "express", "bulk", "insured", "palletised", "oversized", "standard")
FIRST_DAY = dt.date(2015, 1, 1)


def reference(row_id: int) -> str:
    """The unique token that ends row `row_id`'s note."""
    return f"SH{row_id:07d}"


class Vocabulary:
    """pycountry's names, loaded once: countries with their subdivisions, currencies, languages."""

    def __init__(self) -> None:
        regions: dict[str, list[str]] = {}
        for sub in pycountry.subdivisions:
            regions.setdefault(sub.country_code, []).append(sub.name)
        self.countries = [(c.name, regions.get(c.alpha_2, [c.name])) for c in pycountry.countries]
        self.currencies = [c.name for c in pycountry.currencies]
        self.languages = [lang.name for lang in pycountry.languages if hasattr(lang, "alpha_2")]


def _rows(count: int, seed: int, vocab: Vocabulary) -> Iterator[tuple[object, ...]]:
    rng = random.Random(seed)
    for row_id in range(1, count + 1):
        country, regions = rng.choice(vocab.countries)
        region = rng.choice(regions)
        currency, language = rng.choice(vocab.currencies), rng.choice(vocab.languages)
        shipped = FIRST_DAY + dt.timedelta(days=rng.randrange(3650))
        note = (
            f"{rng.choice(STATES)} shipment of {rng.choice(GOODS)} to {region}, {country}; "
            f"invoiced in {currency}, papers in {language}; ref {reference(row_id)}"
        )
        weight = round(rng.lognormvariate(3.0, 1.2), 2)
        yield (row_id, country, region, currency, language, weight, shipped.isoformat(), note)


def write_table(path: Path, count: int, seed: int = 7) -> None:
    """Write `count` rows to a new SQLite file at `path` (one transaction, executemany)."""
    vocab = Vocabulary()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as con:
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute(SCHEMA)
        con.executemany(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _rows(count, seed, vocab))
    con.close()
    os.replace(tmp, path)


def shipments_table(folder: Path, count: int, seed: int = 7) -> Path:
    """The cached table of `count` rows under `folder`, built on first use."""
    path = folder / f"shipments-{count}-seed{seed}.sqlite"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        write_table(path, count, seed)
    return path


def queries(count: int, seed: int = 7) -> list[str]:
    """Search queries from the table's own vocabulary: "<country> <currency>" and "<goods> <region>"."""
    vocab, rng = Vocabulary(), random.Random(seed)
    found = []
    for i in range(count):
        country, regions = rng.choice(vocab.countries)
        if i % 2:
            found.append(f"{rng.choice(GOODS)} to {rng.choice(regions)}")
        else:
            found.append(f"{country} {rng.choice(vocab.currencies)}")
    return found
