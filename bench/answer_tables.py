"""Real tables for the answer benchmark: pycountry's ISO 3166 / ISO 4217 data in a SQL database.

Three tables, written through SQLAlchemy Core with the fields pycountry has (codes stay text, so Brazil's
numeric code is ``076``, not 76):

    countries     alpha_2 PK, alpha_3, name, common_name?, official_name?, numeric, flag
    currencies    alpha_3 PK, name, numeric
    subdivisions  code PK, name, type, country_code, parent_code?

All ~5,000 subdivisions embed slowly on a small CPU, so only those of `DEFAULT_SUBDIVISIONS` are loaded
unless asked (``--subdivisions-of all``). Loading drops and recreates the tables, so it can run again.
On PostgreSQL the tables live in the schema named by the URL's search_path (``almanac_bench`` when the URL
names none), created if missing; Almanac reads them with the same URL.

    .venv/bin/python bench/answer_tables.py                                  # SQLite bench/data/countries.db
    .venv/bin/python bench/answer_tables.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/answer_tables.py --check bench/row_questions.jsonl

`check_questions` verifies each row question against pycountry itself: its answer must equal the named
field of its keyed row, that row must be in the default load, and the question must not contain the answer.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pycountry
from sqlalchemy import Column, Engine, MetaData, String, Table, create_engine, text
from sqlalchemy.engine import make_url

from almanac.core.row_text import render_row
from almanac.finetune.answer_metrics import normalize

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_URL = f"sqlite:///{DATA_DIR / 'countries.db'}"
DEFAULT_SUBDIVISIONS = ("DE", "FR", "US", "JP", "BR", "IN", "NO", "CH")
ALL = "all"
SCHEMA = "almanac_bench"
KEYS = {"countries": "alpha_2", "currencies": "alpha_3", "subdivisions": "code"}
_SEARCH_PATH = re.compile(r"search_path\s*=\s*([A-Za-z_][A-Za-z0-9_]*)")
_QUESTION_FIELDS = {"question", "answer", "source", "key", "field"}


def table_metadata() -> MetaData:
    """The three tables; nullable columns are the fields pycountry leaves out for some records."""
    metadata = MetaData()
    Table(
        "countries",
        metadata,
        Column("alpha_2", String(2), primary_key=True),
        Column("alpha_3", String(3), nullable=False),
        Column("name", String(100), nullable=False),
        Column("common_name", String(100)),
        Column("official_name", String(200)),
        Column("numeric", String(3), nullable=False),
        Column("flag", String(16), nullable=False),
    )
    Table(
        "currencies",
        metadata,
        Column("alpha_3", String(3), primary_key=True),
        Column("name", String(100), nullable=False),
        Column("numeric", String(3), nullable=False),
    )
    Table(
        "subdivisions",
        metadata,
        Column("code", String(10), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("type", String(100), nullable=False),
        Column("country_code", String(2), nullable=False),
        Column("parent_code", String(10)),
    )
    return metadata


def _record(item: Any, table: Table) -> dict[str, Any]:
    """A pycountry record as a row of `table` (fields it lacks are None)."""
    return {column.name: getattr(item, column.name, None) for column in table.columns}


def table_rows(subdivisions_of: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The rows of each table, in pycountry's order; `subdivisions_of` limits subdivisions by country
    (``["all"]`` keeps every one). Unknown country codes are an error rather than silently empty."""
    tables = table_metadata().tables
    wanted = {code.upper() for code in subdivisions_of}
    if ALL.upper() not in wanted:
        unknown = sorted(code for code in wanted if pycountry.countries.get(alpha_2=code) is None)
        if unknown:
            raise ValueError(f"--subdivisions-of: not ISO 3166 alpha-2 codes: {', '.join(unknown)}")
    subdivisions = [s for s in pycountry.subdivisions if ALL.upper() in wanted or s.country_code in wanted]
    return {
        "countries": [_record(c, tables["countries"]) for c in pycountry.countries],
        "currencies": [_record(c, tables["currencies"]) for c in pycountry.currencies],
        "subdivisions": [_record(s, tables["subdivisions"]) for s in subdivisions],
    }


def bench_url(url: str) -> str:
    """The URL to load into and ingest from: a PostgreSQL URL without a search_path gets ``almanac_bench``.

    >>> bench_url("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    'postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dalmanac_bench'
    >>> bench_url("sqlite:///bench/data/countries.db")
    'sqlite:///bench/data/countries.db'
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or "options" in parsed.query:
        return url
    with_schema = parsed.update_query_dict({"options": f"-csearch_path={SCHEMA}"})
    return with_schema.render_as_string(hide_password=False)


def _engine(url: str) -> Engine:
    """An engine for `url`; makes the SQLite file's folder or the PostgreSQL schema when missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if parsed.get_backend_name() == "postgresql":
        found = _SEARCH_PATH.search(str(parsed.query.get("options", "")))
        if found:
            with engine.begin() as conn:
                schema = conn.dialect.identifier_preparer.quote_schema(found[1])
                conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
    return engine


def load_tables(url: str, subdivisions_of: Sequence[str]) -> dict[str, int]:
    """Drop, recreate and fill the three tables at `url`; the number of rows written per table."""
    url = bench_url(url)
    rows = table_rows(subdivisions_of)
    metadata = table_metadata()
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            metadata.drop_all(conn)
            metadata.create_all(conn)
            for name, table in metadata.tables.items():
                conn.execute(table.insert(), rows[name])
    finally:
        engine.dispose()
    return {name: len(rows[name]) for name in metadata.tables}


def read_questions(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL question file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def question_problems(item: dict[str, Any], rows: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """What is wrong with one row question (empty when its answer is the keyed row's field value)."""
    if set(item) != _QUESTION_FIELDS:
        return [f"fields {sorted(item)}, expected {sorted(_QUESTION_FIELDS)}"]
    table, key, field, answer = item["source"], item["key"], item["field"], item["answer"]
    if table not in rows:
        return [f"unknown table {table!r}"]
    row = rows[table].get(key)
    if row is None:
        return [f"{table} has no row {key!r} (outside the default load?)"]
    if field not in row:
        return [f"{table} has no field {field!r}"]
    problems = []
    if str(row[field]) != answer:
        problems.append(f"answer {answer!r} != {table}[{key!r}].{field} = {row[field]!r}")
    if f" {normalize(answer)} " in f" {normalize(item['question'])} ":
        problems.append("the question contains its answer, so echoing it would count as correct")
    if f" {normalize(answer)} " not in f" {normalize(render_row(table, row))} ":
        problems.append("the rendered row does not contain the answer as whole words")
    return problems


def check_questions(path: Path, subdivisions_of: Sequence[str] = DEFAULT_SUBDIVISIONS) -> list[str]:
    """Every problem of the row questions at `path`, checked against pycountry's data (empty: all good)."""
    rows = {
        name: {row[KEYS[name]]: row for row in table} for name, table in table_rows(subdivisions_of).items()
    }
    items = read_questions(path)
    problems = []
    seen: set[str] = set()
    for number, item in enumerate(items, start=1):
        found = question_problems(item, rows)
        if item.get("question") in seen:
            found.append("duplicate question")
        seen.add(item.get("question", ""))
        problems += [f"line {number}: {item.get('question')!r}: {p}" for p in found]
    return problems


def main(argv: list[str] | None = None) -> int:
    """Load the tables (default) or check a question file (--check)."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="SQLAlchemy URL (default: %(default)s)")
    parser.add_argument(
        "--subdivisions-of",
        nargs="+",
        default=list(DEFAULT_SUBDIVISIONS),
        metavar="CC",
        help="alpha-2 codes whose subdivisions to load, or 'all' (default: %(default)s)",
    )
    parser.add_argument("--check", type=Path, metavar="JSONL", help="verify a row-question file instead")
    args = parser.parse_args(argv)
    if args.check:
        problems = check_questions(args.check, args.subdivisions_of)
        print("\n".join(problems) or f"{len(read_questions(args.check))} questions match pycountry's data")
        return 1 if problems else 0
    try:
        counts = load_tables(args.url, args.subdivisions_of)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(", ".join(f"{name}: {n} rows" for name, n in counts.items()))
    tables = " ".join(f"--table {name}" for name in counts)
    print(f"ingest with: almanac ingest-db '{bench_url(args.url)}' {tables} --name countries -c countries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
