"""Row questions that need a lookup (counts, ranges, "which ... has the highest ..."): base vs tool-calling vs
tool-calling + adapter, accuracy and latency.

A SQLite `bikes` table (seeded, 40 rows: colour, kind, size, weight_kg, price) is written to a temp folder;
the questions and gold answers come from finetune/tool_call_examples.py (each call executed and checked
first). Every mode shows the model the same retrieved context, a few rows (no single row answers these); the
tool modes also offer the lookup tools through the server's loop (server/answering/tool_calls.py), scoped to
the table, at most 2 calls.

    .venv/bin/python bench/tool_lookup.py --limit 3                       # quick check
    .venv/bin/python bench/tool_lookup.py --adapter tools --json out.json # with an adapter already trained
    .venv/bin/python bench/tool_lookup.py --model smollm2 --train 60      # train one here, then compare

`--train N` first LoRA-trains an adapter (the product's train_adapter) on N API-call examples drawn from a
different table, `scooters` (other columns, other values), so every question asked about `bikes` is held
out: the adapter must have learned to call the tools, not the calls.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from almanac.core.chat_backend import build_chat_model
from almanac.core.lookup_tool import TableSpec
from almanac.core.prompt import build_answer_messages
from almanac.core.row_text import render_row
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase
from almanac.finetune.answer_metrics import normalize
from almanac.finetune.tool_call_examples import ToolCallExamples
from almanac.server.answering.answer import Prepared
from almanac.server.answering.tool_calls import ToolCalls

COLOURS = ("red", "green", "blue", "amber", "slate")
KINDS = ("Trail", "Road", "City", "Gravel")
SIZES = ("M", "L", "S", "XL")
FINISHES = ("matte", "gloss", "satin", "chrome", "pearl", "carbon")
MAKES = ("Volt", "Glide", "Zip", "Nimbus", "Kite")
CITIES = ("Oslo", "Lyon", "Porto", "Graz", "Turku", "Ghent")
ADAPTER = "tool-calls-bench"


def make_table(path: Path, rows: int = 40, seed: int = 0) -> str:
    """A seeded bikes table (some values rare); returns its SQLAlchemy URL."""
    rng = random.Random(seed)
    pick = lambda values: rng.choices(values, weights=range(len(values), 0, -1))[0]  # noqa: E731
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE bikes (id INTEGER PRIMARY KEY, name TEXT, colour TEXT, kind TEXT, size TEXT, "
            "weight_kg REAL, price INTEGER)"
        )
        data = []
        for i in range(1, rows + 1):
            kind = pick(KINDS)
            colour, size = pick(COLOURS), pick(SIZES)
            data.append(
                (i, f"{kind} {i}", colour, kind, size, round(rng.uniform(7, 18), 1), rng.randint(4, 60) * 100)
            )
        conn.executemany("INSERT INTO bikes VALUES (?, ?, ?, ?, ?, ?, ?)", data)
    return f"sqlite:///{path}"


def make_training_table(path: Path, rows: int = 60, seed: int = 7) -> TableSpec:
    """A seeded `scooters` table in the same database, for training only: other columns and values than
    `bikes`, some values rare (so "which ... have" questions arise)."""
    rng = random.Random(seed)
    pick = lambda values: rng.choices(values, weights=range(len(values), 0, -1))[0]  # noqa: E731
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE scooters (id INTEGER PRIMARY KEY, name TEXT, finish TEXT, make TEXT, city TEXT, "
            "range_km INTEGER, price INTEGER, seats INTEGER)"
        )
        data = [
            (
                i,
                f"{pick(MAKES)} {i}",
                pick(FINISHES),
                pick(MAKES),
                pick(CITIES),
                rng.randint(20, 90),
                rng.randint(300, 2400),
                rng.choice((1, 1, 2)),
            )
            for i in range(1, rows + 1)
        ]
        conn.executemany("INSERT INTO scooters VALUES (?, ?, ?, ?, ?, ?, ?, ?)", data)
    return TableSpec("shop.scooters", ("id", "name", "finish", "make", "city", "range_km", "price", "seats"))


def train_tool_adapter(
    settings: Settings, db: SourceDatabase, spec: TableSpec, n: int, folder: Path
) -> dict[str, Any]:
    """LoRA on `n` curated API-call examples of `spec` (one in five for validation); returns its figures."""
    from almanac.finetune.records import write_records
    from almanac.finetune.training import TrainingConfig, train_adapter

    examples = ToolCallExamples(db, [spec])
    records = examples.curate(examples.generate(per_table=n, rng=random.Random(3)))
    cut = max(1, len(records) // 5)
    write_records(folder / "train.jsonl", records[cut:])
    write_records(folder / "validation.jsonl", records[:cut])
    config = TrainingConfig(name=ADAPTER, base_model=settings.chat.model, device="cpu")
    result = train_adapter(
        config,
        folder / "train.jsonl",
        folder / "validation.jsonl",
        models_dir=settings.models_dir,
        adapters_dir=settings.adapters_dir,
        force=True,
        progress=False,
    )
    return {
        "records": len(records) - cut,
        "validation": cut,
        "seconds": round(result.runtime_s, 1),
        "tokens_per_second": round(result.tokens_per_second, 1),
        "validation_loss": result.manifest.validation_loss,
    }


class _Registry:
    """The one source, shaped like the server's SourceRegistry (every table counts as in the collection)."""

    def __init__(self, db: SourceDatabase) -> None:
        self.db, self.catalog = db, self

    def holds_rows(self, collection: str, source: str, table: str | None = None) -> bool:
        return True

    def names(self) -> list[str]:
        return [self.db.name]

    def get(self, name: str) -> SourceDatabase:
        return self.db


def ask(
    chat: Any, tools: ToolCalls | None, question: str, context: list[str], adapter: str | None
) -> dict[str, Any]:
    """One answer (through the tool loop when `tools`), its seconds and the calls made."""
    messages = build_answer_messages(question, [(f"db://shop/bikes/{i}", t) for i, t in enumerate(context)])
    prepared = Prepared(question, "bench", [], messages, adapter, 128)
    started = time.perf_counter()
    if tools is None:
        text = chat.complete(messages, 128, adapter).text
    else:
        text = tools.complete(chat, prepared).text
    return {"answer": text, "seconds": time.perf_counter() - started, "calls": prepared.tool_calls}


def correct(gold: str, answer: str) -> bool:
    """The gold answer appears in the reply as whole words ("1" is not found in "10").

    >>> correct("1", "There is 1 bike."), correct("1", "Road 10 is one.")
    (True, False)
    """
    return re.search(rf"(?<![\w.]){re.escape(normalize(gold))}(?![\w]|\.\d)", normalize(answer)) is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=30, help="questions asked (seeded sample)")
    parser.add_argument("--adapter", help="adapter trained on the API-call kind (adds the third mode)")
    parser.add_argument("--model", help="chat model (default: ALMANAC_CHAT__MODEL, the embedded reader)")
    parser.add_argument("--train", type=int, help="train an adapter on N scooters examples first")
    parser.add_argument("--json", type=Path, help="write per-question results here")
    args = parser.parse_args(argv)
    settings = Settings()
    settings.server.lookup_tables = ["shop.bikes"]
    settings.chat.model = args.model or settings.chat.model
    training: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = SourceDatabase("shop", make_table(Path(tmp) / "shop.db"))
        if args.train:
            spec = make_training_table(Path(tmp) / "shop.db")
            training = train_tool_adapter(settings, db, spec, args.train, Path(tmp))
            args.adapter = ADAPTER
        spec = TableSpec("shop.bikes", tuple(db.check_table("bikes").columns))
        examples = ToolCallExamples(db, [spec])
        records = examples.curate(examples.generate(per_table=args.limit, rng=random.Random(1)))
        rows = db.lookup("bikes", {}, 3, row_cap=3, timeout_ms=5000)
        context = [render_row("bikes", row) for row in rows]
        chat, tools = build_chat_model(settings), ToolCalls(settings, _Registry(db))  # type: ignore[arg-type]
        modes: dict[str, tuple[ToolCalls | None, str | None]] = {"base": (None, None), "tools": (tools, None)}
        if args.adapter:
            modes["tools+adapter"] = (tools, args.adapter)
        results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for record in records[: args.limit]:
            for mode, (loop, adapter) in modes.items():
                got = ask(chat, loop, record.question, context, adapter)
                got |= {"question": record.question, "gold": record.answer}
                got["correct"] = correct(record.answer, got["answer"])
                results[mode].append(got)
        db.close()
    summary = {
        mode: {
            "questions": len(items),
            "accuracy": round(sum(i["correct"] for i in items) / max(len(items), 1), 3),
            "median_s": round(statistics.median(i["seconds"] for i in items), 3) if items else None,
            "calls": sum(len(i["calls"]) for i in items),
            "calls_ok": sum(c["ok"] for i in items for c in i["calls"]),
        }
        for mode, items in results.items()
    }
    print(json.dumps({"model": settings.chat.model, "training": training, "summary": summary}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
