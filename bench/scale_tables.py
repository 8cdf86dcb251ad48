"""Markdown tables for bench/scale.py's report: one column per run, targets marked met (✓) or missed (✗)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Run = dict[str, Any]
Getter = Callable[[Run], Any]


def get(run: Any, *path: str) -> Any:
    """run[path[0]][path[1]]..., or None where something is missing."""
    for key in path:
        if not isinstance(run, dict) or key not in run:
            return None
        run = run[key]
    return run


def _at_most(limit: float) -> Callable[[float], bool]:
    return lambda value: value <= limit


def _errors(run: Run) -> int | None:
    levels = [get(run, "server", f"search_{c}") for c in (1, 32)]
    return sum(sum(lv["errors"].values()) for lv in levels if lv) if any(levels) else None


def _segments(run: Run) -> str | None:
    if run["code"] == "before":
        return "one FAISS file per version"
    segments = get(run, "recall", "segments")
    if segments is None:
        return None
    kinds: dict[str, int] = {}
    for segment in segments:
        kinds[segment["kind"]] = kinds.get(segment["kind"], 0) + 1
    mix = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    return f"{len(segments)} ({mix}), {run['recall']['deleted']} deleted ids"


def _recall(run: Run) -> Any:
    return "flat: exact" if run["code"] == "before" else get(run, "recall", "recall_at_10")


CHANGES = {"update": "update 1 row", "delete": "delete 1 row", "add": "add 1 document"}
Check = Callable[[Any], bool] | None


def _figures() -> list[tuple[str, str, str | Getter, str, Check]]:
    """(figure, target, dotted path in a run or a getter, format, target check)."""
    at_most_1 = _at_most(1.0)
    figures: list[tuple[str, str, str | Getter, str, Check]] = [
        ("rows ingested", "", "ingest.rows", "{:,}", None),
        ("ingest rows/s, whole call", "", "ingest.rows_per_s", "{:,.0f}", None),
        ("ingest rows/s, first 10%", "", "ingest.first10_rows_per_s", "{:,.0f}", None),
        ("ingest rows/s, last 10% (to the end)", "", "ingest.last10_rows_per_s", "{:,.0f}", None),
        ("last 10% / first 10%", ">= 0.8", "ingest.last_over_first", "{:.2f}", lambda v: v >= 0.8),
        ("ingest peak RSS, MiB", "", "ingest.peak_rss_mb", "{:,.0f}", None),
    ]
    for kind, name in CHANGES.items():
        figures += [
            (f"{name}: publish s (ingest call)", "<= 1", f"changes.{kind}.publish_s", "{:.2f}", at_most_1),
            (f"{name}: of which scan s", "", f"changes.{kind}.scan_s", "{:.2f}", None),
            (f"{name}: of which commit s", "", f"changes.{kind}.commit_s", "{:.3f}", None),
            (f"{name}: visible s after commit", "<= 1", f"changes.{kind}.visible_s", "{:.3f}", at_most_1),
        ]
    figures += [
        ("delete: gone from responses, s after commit", "", "changes.delete.dropped_s", "{:.3f}", None),
        ("cold start to first search, s", "<= 10", "server.cold_start_s", "{:.2f}", _at_most(10.0)),
        ("ready (/readyz), s", "", "server.ready_s", "{:.2f}", None),
        ("server RSS after warm-up, MiB", "", "server.rss_ready_mb.rss", "{:,.0f}", None),
        ("server peak RSS after the load, MiB", "", "server.rss_loaded_mb.peak", "{:,.0f}", None),
        ("RSS of a ready server, no collection, MiB", "", "empty_server.rss", "{:,.0f}", None),
        ("/v1/search 1 client p50 ms", "", "server.search_1.p50_ms", "{:.1f}", None),
        ("/v1/search 1 client p99 ms", "<= 50", "server.search_1.p99_ms", "{:.1f}", _at_most(50.0)),
        ("/v1/search 32 clients p50 ms", "", "server.search_32.p50_ms", "{:.1f}", None),
        ("/v1/search 32 clients p99 ms", "", "server.search_32.p99_ms", "{:.1f}", None),
        ("/v1/search 32 clients req/s", "", "server.search_32.throughput_rps", "{:.1f}", None),
        ("/v1/search errors (1 + 32 clients)", "0", _errors, "{}", lambda v: v == 0),
        ("recall@10 vs exact", "", _recall, "{:.3f}", None),
        ("segments", "", _segments, "{}", None),
    ]
    return figures


def _value(run: Run, where: str | Getter) -> Any:
    return get(run, *where.split(".")) if isinstance(where, str) else where(run)


def _cell(value: Any, fmt: str, check: Callable[[Any], bool] | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    text = fmt.format(value)
    return f"{text} {'✓' if check(value) else '✗'}" if check is not None else text


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def figures_table(report: dict[str, Any]) -> str:
    """One row per figure, one column per run (largest first; the format before beside the one after)."""
    runs = sorted(report["runs"].values(), key=lambda r: (-r["rows"], r["code"] != "before"))
    header = ["figure", "target", *(f"{r['code']} {r['rows']:,}" for r in runs)]
    rows = [
        [name, target, *(_cell(_value(r, where), fmt, check) for r in runs)]
        for name, target, where, fmt, check in _figures()
    ]
    return _table(header, rows)


def threshold_table(threshold: dict[str, Any]) -> str:
    """Flat single-query search latency against n."""
    rows = [[f"{lv['n']:,}", f"{lv['p50_ms']:.1f}", f"{lv['p99_ms']:.1f}"] for lv in threshold["levels"]]
    return _table(["vectors (flat, d=384)", "p50 ms", "p99 ms"], rows)


def print_report(report: dict[str, Any]) -> None:
    """Every table the report has data for, then the errors."""
    if report.get("runs"):
        print(figures_table(report))
    if "threshold" in report:
        t = report["threshold"]
        print(f"\nExact search (faiss IndexFlatIP, k=10, 1 query, {t['threads']} threads):\n")
        print(threshold_table(t))
        print(f"\nfirst n with p99 over {t['limit_ms']:.0f} ms: {t['first_n_over'] or 'none measured'}")
    for run in report.get("runs", {}).values():
        for error in run["errors"]:
            print(f"\n{run['label']} {error['phase']}: {error['error']}")
