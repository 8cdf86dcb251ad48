"""Crash safety: SIGKILL the indexer at random points of a bulk ingest, then check the invariants.

bench/crash.py runs the same harness with hundreds of kills and reports the counts.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.indexer.crash_harness import crash_loop, ingest, make_corpus, snapshot_state


@pytest.mark.slow
def test_random_sigkills_lose_nothing_and_converge(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", files=120)
    started = time.perf_counter()
    assert ingest(corpus, tmp_path / "reference")
    full_run = time.perf_counter() - started
    reference, problems = snapshot_state(tmp_path / "reference")
    assert problems == [] and len(reference) > 200
    counts = crash_loop(corpus, tmp_path / "killed", reference, kills=10, max_delay=full_run, seed=3)
    assert counts.kills == 10
    assert counts.lost == 0, "a kill lost committed chunks"
    assert counts.inconsistent == 0, counts.problems
    assert counts.final_matches_reference, counts.problems


def test_the_checks_detect_a_lost_chunk(tmp_path: Path) -> None:
    """The harness is not blind: deleting a committed chunk behind the indexer's back is reported."""
    import sqlite3

    corpus = make_corpus(tmp_path / "corpus", files=3)
    assert ingest(corpus, tmp_path / "home")
    with sqlite3.connect(tmp_path / "home" / "catalog.db") as con:
        con.execute("DELETE FROM chunks WHERE id = (SELECT MIN(id) FROM chunks)")
    _, problems = snapshot_state(tmp_path / "home")
    assert any("1 vectors without a chunk" in p for p in problems)
