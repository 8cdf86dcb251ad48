"""Markdown tables for bench/serve.py's report (ready to paste into BENCHMARKS.md)."""

from __future__ import annotations

from typing import Any


def _row(cells: list[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]
    return "\n".join(lines)


def throughput_ratio(levels: list[dict[str, Any]]) -> float:
    """Throughput at the most clients over the better of the one-client levels (the conservative ratio)."""
    one = max(lv["throughput_rps"] for lv in levels if lv["concurrency"] == 1)
    return max(levels, key=lambda lv: lv["concurrency"])["throughput_rps"] / one if one else 0.0


def servings(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, serving) of each server the run measured: the corpus, then each synthetic index kind."""
    found = [("Python docs, flat", report["corpus_serving"])] if report.get("corpus_serving") else []
    return found + [(f"synthetic, {s['kind']}", s) for s in report.get("synthetic_serving", [])]


def search_table(report: dict[str, Any]) -> str:
    """One row per (collection, clients)."""
    rows = []
    for name, serving in servings(report):
        for lv in serving["search"]:
            load = "→".join(f"{x:.1f}" for x in lv["load_avg_1m"])
            rows.append(
                [
                    name,
                    f"{serving['chunks']:,}",
                    f"{lv['concurrency']}{' (again)' if lv.get('again') else ''}",
                    lv["requests"],
                    f"{lv['p50_ms']:.1f}",
                    f"{lv['p90_ms']:.1f}",
                    f"{lv['p99_ms']:.1f}",
                    f"{lv['throughput_rps']:.1f}",
                    sum(lv["errors"].values()),
                    load,
                ]
            )
    header = ["collection", "chunks", "clients", "requests", "p50 ms", "p90 ms", "p99 ms", "req/s", "errors"]
    return _table([*header, "load avg 1m"], rows)


def query_table(query: dict[str, Any]) -> str:
    """One row per question, then the totals."""
    rows = []
    for q in query["questions"]:
        if "skipped" in q:
            rows.append([q["question"][:60], q["skipped"], "", "", "", "", "", "", ""])
            continue
        t = q["timings"]
        rows.append(
            [
                q["question"][:60],
                f"{t['retrieval'] * 1000:.0f}",
                f"{t['prompt'] * 1000:.1f}",
                f"{t['queue'] * 1000:.1f}",
                f"{t['generation']:.2f}",
                f"{q['prompt_tokens']}/{q['completion_tokens']}",
                f"{q['server_tokens_per_s']:.1f}",
                f"{q['direct_tokens_per_s']:.1f}",
                "yes" if q["same_prompt_tokens"] and q["same_completion"] else "NO",
            ]
        )
    header = ["question", "retrieval ms", "prompt ms", "queue ms", "generation s", "tokens in/out"]
    return _table([*header, "server tok/s", "direct tok/s", "same output"], rows)


def targets(report: dict[str, Any]) -> list[str]:
    """One line per target: measured value, target, met or missed."""
    goals, lines = report["targets"], []

    def line(name: str, value: float, goal: float, higher: bool) -> None:
        met = value >= goal if higher else value < goal
        sign = ">=" if higher else "<"
        lines.append(f"- {name}: {value:.2f} (target {sign} {goal}) {'met' if met else 'MISSED'}")

    for synthetic in report.get("synthetic_serving", []):
        for lv in synthetic["search"]:  # the target is for one client; more clients queue (Little's law)
            size, kind, clients = synthetic["chunks"], synthetic["kind"], lv["concurrency"]
            again = " again" if lv.get("again") else ""
            if clients == 1:
                name = f"search p99, {size:,} chunks, {kind}, 1 client{again} (ms)"
                line(name, lv["p99_ms"], goals["search_p99_ms_at_200k"], False)
    for name, serving in servings(report):
        ratio = throughput_ratio(serving["search"])
        line(f"{name}: throughput 32 clients / 1 client", ratio, goals["throughput_32_vs_1"], True)
    query = report["corpus_serving"].get("query")
    if query:
        line("generation tokens/s, server / direct", query["ratio"], goals["generation_ratio"], True)
    return lines


def profile_table(report: dict[str, Any]) -> str:
    """Busy-sample shares per part of the request path, one column per profiled level."""
    columns, shares = [], []
    for name, serving in servings(report):
        for prof in serving.get("profiles", []):
            if "shares" in prof:
                columns.append(f"{name} c={prof['concurrency']}")
                shares.append(prof["shares"])
    parts = sorted({p for s in shares for p in s}, key=lambda p: -max(s.get(p, 0) for s in shares))
    rows = [[part, *(f"{100 * s.get(part, 0):.1f}%" for s in shares)] for part in parts]
    return _table(["part of the request path (busy samples)", *columns], rows) if columns else ""


def print_report(report: dict[str, Any]) -> None:
    """Everything on stdout, markdown."""
    print(f"command: {report['command']}")
    machine = report["machine"]
    print(
        f"machine: {machine['platform']}, {machine['affinity']} cores usable, load avg at start "
        f"{'/'.join(f'{x:.2f}' for x in machine['load_avg'])}, at end "
        f"{'/'.join(f'{x:.2f}' for x in machine['load_avg_end'])}"
    )
    print(f"server environment: {report['plan']['server_env'] or 'defaults'}")
    print("\n/v1/search (client-side latency, closed loop)\n")
    print(search_table(report))
    query = report["corpus_serving"].get("query")
    if query:
        print(f"\n/v1/query (max_tokens {query['max_tokens']}; timings from the response, mean of 2 runs)\n")
        print(query_table(query))
        print(
            f"\ngeneration: server {query['server_tokens_per_s']:.1f} tok/s, direct model.generate "
            f"{query['direct_tokens_per_s']:.1f} tok/s, ratio {query['ratio']:.3f}"
        )
    profiles = profile_table(report)
    if profiles:
        print("\nprofile (py-spy on the server during extra levels; not the measured ones)\n")
        print(profiles)
    for name, serving in servings(report):
        for prof in serving.get("profiles", []):
            if "snapshots" in prof:
                many = [snap["in_search_many"] for snap in prof["snapshots"]]
                embed = [snap["in_embed"] for snap in prof["snapshots"]]
                print(
                    f"\n{name}, {prof['concurrency']} clients, py-spy dump snapshots: threads inside "
                    f"Retriever.search_many (micro-batches at once) {many}, inside the embedder {embed}"
                )
    print("\ntargets")
    print("\n".join(targets(report)))
