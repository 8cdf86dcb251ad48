"""Answer-quality benchmark: every candidate reader x prompt variant on development sets we own.

    .venv/bin/python bench/answers.py                                  # readers x variants, 12 per set
    .venv/bin/python bench/answers.py --limit 0 --variants focused     # the full sets, one variant
    .venv/bin/python bench/answers.py --readers qwen2.5-coder-1.5b --limit 8

Sets: the 43 hand-written Python-documentation questions (bench/python_docs_questions.jsonl), the row
questions over pycountry's tables (bench/row_questions.jsonl) read live from SQLite ("rows") and from
PostgreSQL ("rows-pg", when the server answers), and questions neither corpus answers
(bench/unanswerable_questions.jsonl). The home (bench/data/answers-home) is built once by
bench/answer_corpus.py: 60 documentation pages in collection `pydocs`, the tables in `countries`.

Figures per configuration (each in its own process): accuracy = contains-match of the gold answer (a refusal
is wrong), refusal accuracy on unanswerable questions, over-refusal on answerable ones, citation precision
(cited sources that contain the gold answer), answer-in-context (the sources shown hold the gold answer as
whole normalised words: a lower bound, punctuation inside code names defeats it), over-refusal when the
answer was shown (refusing when retrieval missed it is right),
p50/p95 answer time, p50 time to first token (streamed), peak RSS, and the time to the first answer of a
fresh process (models loaded from the cache, then one answer). Printed as one table and written, with
every answer, to bench/out/answers.json. Nothing here was tuned on these questions after seeing answers
except what BENCHMARKS.md says.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from answers_run import VARIANTS  # noqa: E402
from finetune_eval import lenient_contains  # noqa: E402

HOME = BENCH / "data" / "answers-home"
OUT = BENCH / "out" / "answers.json"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dalmanac_bench"
SETS = {  # set name -> (file, collection)
    "docs": ("python_docs_questions.jsonl", "pydocs"),
    "rows": ("row_questions.jsonl", "countries"),
    "rows-pg": ("row_questions.jsonl", "countries_pg"),
}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def questions(limit: int, with_pg: bool) -> list[dict[str, Any]]:
    """The questions of every set, the first `limit` of each (0: all), tagged with set and collection.

    The hand-written documentation file holds answerable questions and a few the pages do not answer
    (no "answer"): those join the unanswerable set.
    """
    chosen, unanswerable = [], read_jsonl(BENCH / "unanswerable_questions.jsonl")
    for name, (file, collection) in SETS.items():
        if name == "rows-pg" and not with_pg:
            continue
        items = read_jsonl(BENCH / file)
        if name == "docs":
            unanswerable += [{**q, "corpus": "docs"} for q in items if not q.get("answer")]
        items = [q for q in items if q.get("answer")]
        chosen += [{**q, "set": name, "collection": collection} for q in items[: limit or None]]
    for corpus, collection in (("docs", "pydocs"), ("rows", "countries")):
        items = [q for q in unanswerable if q["corpus"] == corpus]
        chosen += [{**q, "set": "unanswerable", "collection": collection} for q in items[: limit or None]]
    return chosen


def build_home(with_pg: bool) -> None:
    """The benchmark home: docs and SQLite tables (answer_corpus), plus the PostgreSQL copy of the tables."""
    import answer_corpus
    import answer_tables

    sqlite_url = f"sqlite:///{BENCH / 'data' / 'countries.db'}"
    answer_tables.load_tables(sqlite_url, answer_tables.DEFAULT_SUBDIVISIONS)
    answer_corpus.build_home(HOME, sqlite_url)
    if with_pg:
        answer_tables.load_tables(PG_URL, answer_tables.DEFAULT_SUBDIVISIONS)
        tables = [arg for table in ("countries", "currencies", "subdivisions") for arg in ("--table", table)]
        command = [sys.executable, "-m", "almanac.cli.main", "ingest-db", PG_URL, "--name", "countries_pg"]
        env = {**os.environ, "ALMANAC_HOME": str(HOME)}
        subprocess.run([*command, *tables, "--collection", "countries_pg"], env=env, check=True)


def run_config(reader: str, variant: str, items: list[dict[str, Any]], max_new_tokens: int) -> dict[str, Any]:
    """One reader x variant in a child process; its figures."""
    config = {"home": str(HOME), "reader": reader, "variant": variant, "questions": items,
              "max_new_tokens": max_new_tokens}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        config_path, out_path = Path(tmp) / "config.json", Path(tmp) / "out.json"
        config_path.write_text(json.dumps(config))
        subprocess.run(
            [sys.executable, str(BENCH / "answers_run.py"), str(config_path), str(out_path)], check=True
        )
        return {"reader": reader, "variant": variant, **json.loads(out_path.read_text())}


def loose_match(result: dict[str, Any]) -> bool:
    """`finetune_eval.lenient_contains` (punctuation read as spaces, so "functools.cache(user_function)"
    contains "functools.cache", which the strict match glues into one word); a refusal is still wrong."""
    return not result["refused"] and lenient_contains(result["answer"], result["gold"] or "")


def summarize(run: dict[str, Any]) -> dict[str, Any]:
    """The table row of one configuration."""
    results = run["results"]
    answerable = [r for r in results if r["set"] != "unanswerable"]
    unanswerable = [r for r in results if r["set"] == "unanswerable"]

    def share(rows: list[dict[str, Any]], key: str) -> float | None:
        return round(sum(bool(r[key]) for r in rows) / len(rows), 3) if rows else None

    cited = sum(r["cited"] for r in answerable)
    seconds = sorted(r["seconds"] for r in results)
    row = {"reader": run["reader"], "variant": run["variant"], "n": len(results)}
    for name in SETS:
        row[f"{name} acc"] = share([r for r in answerable if r["set"] == name], "correct")
    docs = [{**r, "loose": loose_match(r)} for r in answerable if r["set"] == "docs"]
    row["docs acc, punctuation as spaces"] = share(docs, "loose")
    row |= {
        "in context": share(answerable, "in_context"),
        "refusal acc": share(unanswerable, "refused"),
        "over-refusal": share(answerable, "refused"),
        "over-refusal, answer shown": share([r for r in answerable if r["in_context"]], "refused"),
        "citation precision": round(sum(r["cited_with_answer"] for r in answerable) / cited, 3)
        if cited
        else None,
        "p50 s": round(statistics.median(seconds), 2),
        "p95 s": round(seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))], 2),
        "TTFT p50 s": round(statistics.median(r["first_token_s"] for r in results), 2),
        "peak RSS MiB": round(run["peak_rss_mib"]),
        "first answer s": round(run["load_s"], 1),
    }
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table."""
    heads = list(rows[0])
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join("-" if r[h] is None else str(r[h]) for h in heads) + " |" for r in rows]
    return "\n".join(lines)


def pg_available() -> bool:
    """Whether the PostgreSQL server of the machine answers."""
    from sqlalchemy import create_engine, text

    try:
        with create_engine(PG_URL.split("?")[0], connect_args={"connect_timeout": 3}).connect() as conn:
            conn.execute(text("select 1"))
    except Exception:  # any failure means: leave the rows-pg set out
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Build the home once, run every configuration, print and save the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", default="smollm2,qwen2.5-coder-0.5b")
    parser.add_argument("--variants", default="legacy,brief,focused", help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--limit", type=int, default=12, help="questions per set (0: all)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--no-pg", action="store_true", help="leave the PostgreSQL row set out")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", type=Path, nargs="+", help="print the table of saved runs and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(table([summarize(run) for path in args.table for run in json.loads(path.read_text())["runs"]]))
        return 0
    with_pg = not args.no_pg and pg_available()
    build_home(with_pg)
    items = questions(args.limit, with_pg)
    runs = [
        run_config(reader, variant, items, args.max_new_tokens)
        for reader in args.readers.split(",")
        for variant in args.variants.split(",")
    ]
    rows = [summarize(run) for run in runs]
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"args": vars(args) | {"out": str(args.out)}, "table": rows, "runs": runs}, indent=1)
    )
    print(f"answers: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
