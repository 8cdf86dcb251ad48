"""Crash-safety benchmark: SIGKILL `almanac ingest` at random moments hundreds of times and count failures.

    .venv/bin/python bench/crash.py --kills 200 --files 120

Prints a table and writes bench/out/crash.json. Every kill is followed by the checks of DESIGN.md's
invariants (tests/indexer/crash_harness.py); every round ends with a clean run compared to a never-killed one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.indexer.crash_harness import crash_loop, ingest, make_corpus, snapshot_state


def main() -> int:
    """Run the crash loop and report the counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--files", type=int, default=120)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=Path("bench/out/crash.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="almanac-crash-") as tmp:
        work = Path(tmp)
        corpus = make_corpus(work / "corpus", files=args.files)
        started = time.perf_counter()
        ingest(corpus, work / "reference")
        full_run = time.perf_counter() - started
        reference, problems = snapshot_state(work / "reference")
        if problems:
            print("reference run is inconsistent:", problems)
            return 1
        counts = crash_loop(
            corpus,
            work / "killed",
            reference,
            args.kills,
            full_run,
            args.seed,
            log=lambda line: print(line, flush=True),
        )
    result = {
        "files": args.files,
        "chunks": len(reference),
        "full_run_s": round(full_run, 2),
        **asdict(counts),
    }
    result["problems"] = result["problems"][:20]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    rows = [
        ("kills (SIGKILL mid-ingest)", counts.kills),
        ("runs that finished before their kill", counts.finished_before_kill),
        ("rounds (each ends with a clean run)", counts.rounds),
        ("committed chunks lost", counts.lost),
        ("checks with duplicates/phantoms/disagreement", counts.inconsistent),
        ("every final state == never-killed run", counts.final_matches_reference),
        ("chunks in the corpus", len(reference)),
        ("one full ingest, s", f"{full_run:.2f}"),
        ("total time, s", f"{counts.seconds:.0f}"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    ok = counts.lost == 0 and counts.inconsistent == 0 and counts.final_matches_reference
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
