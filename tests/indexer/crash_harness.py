"""Kill `almanac ingest` with SIGKILL at random moments and check DESIGN.md's invariants after each kill.

Used by tests/indexer/test_crash.py (a few kills) and bench/crash.py (hundreds). After every kill:
- nothing committed before is lost (each document committed earlier is still there with the same chunks);
- no duplicate document or chunk, no phantom vector or unindexed chunk (indexer.consistency);
and at the end one clean run must reach exactly the state of a run that was never killed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from almanac.core.catalog import Catalog
from almanac.core.index_store import IndexStore
from almanac.core.settings import Settings
from almanac.indexer.consistency import check_collection

ChunkState = dict[tuple[str, int], tuple[str, str, bytes]]


def make_corpus(folder: Path, files: int, seed: int = 7) -> Path:
    """Deterministic markdown files of a few chunks each."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        paras = [" ".join(f"w{rng.randrange(5000)}" for _ in range(rng.randrange(20, 80))) for _ in range(4)]
        (folder / f"f{i:04d}.md").write_text(f"# File {i}\n\n" + "\n\n## Part\n\n".join(paras))
    return folder


def environment(home: Path) -> dict[str, str]:
    """Settings for the ingest child: hashing embedder, small commits so kills land between versions."""
    return {
        **os.environ,
        "ALMANAC_HOME": str(home),
        "ALMANAC_EMBEDDING__MODEL": "hashing",
        "ALMANAC_CHUNKING__SIZE_TOKENS": "48",
        "ALMANAC_CHUNKING__OVERLAP_TOKENS": "8",
        "ALMANAC_INGEST__COMMIT_CHUNKS": "24",
        "ALMANAC_INGEST__LOCK_TIMEOUT_S": "10",
    }


def ingest(corpus: Path, home: Path, kill_after: float | None = None) -> bool:
    """Run the CLI ingest; SIGKILL it after `kill_after` seconds. True when it finished on its own."""
    cmd = [sys.executable, "-m", "almanac.cli.main", "ingest", str(corpus)]
    proc = subprocess.Popen(cmd, env=environment(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        proc.wait(timeout=kill_after if kill_after is not None else 300)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return False
    if proc.returncode != 0:
        raise RuntimeError(f"ingest failed ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    return True


def snapshot_state(home: Path) -> tuple[ChunkState, list[str]]:
    """Committed chunks keyed by (source, ordinal), and consistency problems."""
    settings = Settings(home=home, embedding={"model": "hashing"})
    if not (home / "catalog.db").exists():
        return {}, []
    catalog = Catalog(settings.catalog_url)
    try:
        if catalog.collection("default") is None:
            return {}, []
        row = catalog.require_collection("default")
        ids, stored, _ = catalog.chunk_payloads(row.id)
        vectors = {int(i): v.tobytes() for i, v in zip(ids, stored, strict=True)}
        state = {
            (c.source, c.ordinal): (c.locator, c.text, vectors[c.id]) for c in catalog.iter_chunks("default")
        }
        problems = check_collection(catalog, IndexStore(settings.index_dir, settings.index), "default")
        return state, problems
    finally:
        catalog.close()


@dataclass
class CrashCounts:
    """What a crash loop saw."""

    kills: int = 0
    finished_before_kill: int = 0
    lost: int = 0
    inconsistent: int = 0
    problems: list[str] = field(default_factory=list)
    final_matches_reference: bool = False
    rounds: int = 0
    seconds: float = 0.0


def _kill_round(
    corpus: Path, home: Path, rng: random.Random, kills_left: int, max_delay: float, counts: CrashCounts
) -> None:
    """From an empty home, kill ingests until one finishes on its own (or no kills are left)."""
    previous: ChunkState = {}
    while kills_left > counts.kills:
        finished = ingest(corpus, home, kill_after=rng.uniform(0.05, max_delay))
        state, problems = snapshot_state(home)
        counts.lost += sum(1 for key, value in previous.items() if state.get(key) != value)
        counts.inconsistent += bool(problems)
        counts.problems += problems
        previous = state
        if finished:
            counts.finished_before_kill += 1
            return
        counts.kills += 1


def crash_loop(
    corpus: Path,
    workdir: Path,
    reference: ChunkState,
    kills: int,
    max_delay: float,
    seed: int = 1,
    log: Callable[[str], None] | None = None,
) -> CrashCounts:
    """Kill ingests `kills` times at uniform random delays, in rounds that each start from an empty home and
    end with a clean run whose state must equal `reference` (a run that was never killed)."""
    rng, counts, started = random.Random(seed), CrashCounts(), time.perf_counter()
    matches: list[bool] = []
    rounds = 0
    while counts.kills < kills:
        home = workdir / f"round{rounds}"
        rounds += 1
        _kill_round(corpus, home, rng, kills, max_delay, counts)
        ingest(corpus, home)
        final, problems = snapshot_state(home)
        counts.problems += problems
        matches.append(final == reference and not problems)
        if log is not None:
            log(
                f"round {rounds}: kills so far {counts.kills}, lost {counts.lost}, "
                f"inconsistent {counts.inconsistent}, final ok {matches[-1]}"
            )
    counts.rounds = rounds
    counts.final_matches_reference = all(matches)
    counts.seconds = time.perf_counter() - started
    return counts
