"""The answer benchmark's home: documentation pages in collection `pydocs`, pycountry tables in `countries`.

Pages: every page a hand-written question (bench/python_docs_questions.jsonl) comes from, plus a seeded
sample of other library pages as distractors, 60 pages in all by default. Distractors leave out the pages
that would answer the set's unanswerable questions (asyncio, subprocess, argparse) and pages over
`MAX_DISTRACTOR_BYTES` (os.html, stdtypes.html, ...), which would multiply the embedding time on a CPU.

    .venv/bin/python bench/answer_corpus.py          # load the SQLite tables, build bench/data/answers-home
    .venv/bin/python bench/answer_corpus.py --list   # the pages only

Both ingests run `almanac` in a child process with ALMANAC_HOME set, as a user runs it; a collection that
already has chunks is left as it is (delete the home to rebuild it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from answer_tables import DEFAULT_SUBDIVISIONS, DEFAULT_URL, KEYS, bench_url, load_tables
from corpus import ensure_corpus

BENCH = Path(__file__).resolve().parent
QUESTIONS = BENCH / "python_docs_questions.jsonl"
HOME = BENCH / "data" / "answers-home"
DOCS_COLLECTION = "pydocs"
ROWS_COLLECTION = "countries"
ROWS_SOURCE = "countries"  # the source name in row citations: db://countries/TABLE/KEY
TOTAL_PAGES = 60
SEED = 0
MAX_DISTRACTOR_BYTES = 150_000
# pages that answer the hand-written "unanswerable" questions, and the library's table of contents
EXCLUDED_PREFIXES = ("asyncio", "subprocess", "argparse", "index")


def _distractor_ok(page: Path) -> bool:
    return not page.name.startswith(EXCLUDED_PREFIXES) and page.stat().st_size <= MAX_DISTRACTOR_BYTES


def question_pages(
    questions_path: Path = QUESTIONS, total: int = TOTAL_PAGES, seed: int = SEED
) -> list[Path]:
    """The pages the questions name as `source` (sorted), then a seeded sample of other library pages
    up to `total` pages in all (sorted too); the same arguments always give the same list."""
    library = ensure_corpus() / "library"
    rows = [
        json.loads(line) for line in questions_path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    named = sorted({row["source"] for row in rows if row.get("source")})
    pages = [library / name for name in named]
    missing = [page.name for page in pages if not page.is_file()]
    if missing:
        raise FileNotFoundError(f"question pages missing from {library}: {', '.join(missing)}")
    others = sorted(p for p in library.glob("*.html") if p.name not in set(named) and _distractor_ok(p))
    extra = random.Random(seed).sample(others, min(len(others), max(0, total - len(pages))))
    return pages + sorted(extra)


def _almanac(home: Path, *args: str) -> str:
    """Run `almanac ARGS` with ALMANAC_HOME=home; its stdout, or SystemExit with its stderr."""
    command = [sys.executable, "-m", "almanac.cli.main", *args]
    env = {**os.environ, "ALMANAC_HOME": str(home)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`almanac {args[0]}` failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def chunk_counts(home: Path) -> dict[str, int]:
    """Chunks per collection, from `almanac status --json`."""
    status: dict[str, Any] = json.loads(_almanac(home, "status", "--json"))
    return {c["name"]: c["chunks"] for c in status["collections"]}


def _timed(label: str, home: Path, *args: str) -> None:
    started = time.perf_counter()
    output = _almanac(home, *args).strip().splitlines()
    print(f"{label}: {output[-1] if output else 'done'} ({time.perf_counter() - started:.0f} s)")


def build_home(home: Path, engine_url_for_rows: str) -> None:
    """Ingest the question pages into `pydocs` and the three tables at `engine_url_for_rows` into
    `countries` (source name ``countries``); a collection that already has chunks is skipped."""
    home.mkdir(parents=True, exist_ok=True)
    counts = chunk_counts(home)
    if counts.get(DOCS_COLLECTION, 0) == 0:
        pages = [str(page) for page in question_pages()]
        _timed(f"{DOCS_COLLECTION} ({len(pages)} pages)", home, "ingest", *pages, "-c", DOCS_COLLECTION)
    if counts.get(ROWS_COLLECTION, 0) == 0:
        tables = [arg for table in KEYS for arg in ("--table", table)]
        url = bench_url(engine_url_for_rows)
        _timed(ROWS_COLLECTION, home, "ingest-db", url, *tables, "--name", ROWS_SOURCE, "-c", ROWS_COLLECTION)
    print(", ".join(f"{name}: {n} chunks" for name, n in chunk_counts(home).items()))


def main(argv: list[str] | None = None) -> int:
    """Load the tables and build the home, or list the pages (--list)."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--home", type=Path, default=HOME, help="ALMANAC_HOME to build (default: %(default)s)"
    )
    parser.add_argument(
        "--rows-url", default=DEFAULT_URL, help="database for the tables (default: %(default)s)"
    )
    parser.add_argument("--list", action="store_true", help="print the pages and stop")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(str(page) for page in question_pages()))
        return 0
    counts = load_tables(args.rows_url, DEFAULT_SUBDIVISIONS)
    print(", ".join(f"{name}: {n} rows" for name, n in counts.items()))
    build_home(args.home, args.rows_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
