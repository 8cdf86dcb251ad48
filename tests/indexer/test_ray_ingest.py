"""Ingestion on Ray Data (indexer.ray_engine) against the local pipeline as the oracle.

One local Ray instance (127.0.0.1, 2 CPUs) serves the module. Each test ingests the same files or rows
locally into one home and through Ray into another, then compares documents, chunks and vectors.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.errors import InputError
from almanac.core.settings import Settings
from almanac.core.source_db import SourceDatabase
from almanac.indexer.pipeline import Indexer
from almanac.indexer.report import IngestReport
from tests.indexer.corpus import write_corpus

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'almanac[ray]')"
)

State = dict[tuple[str, int], tuple[str, str, str, np.ndarray]]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray on 127.0.0.1 with 2 CPUs, shared by the module's tests (and by the CLI runs, which join
    it by its address); yields that address."""
    from almanac.indexer.ray_engine import connect

    ray = connect(None, num_cpus=2)
    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:")  # loopback only
    yield address
    ray.shutdown()


def _settings(home: Path) -> Settings:
    return Settings(
        home=home,
        embedding={"model": "hashing", "hashing_dimension": 64},
        chunking={"size_tokens": 32, "overlap_tokens": 8},
        ingest={"commit_chunks": 8, "max_file_bytes": 4096},
    )


class Home:
    """A home with its catalog and an indexer on the local or the Ray engine."""

    def __init__(self, home: Path, engine: str) -> None:
        self.settings = _settings(home)
        home.mkdir(parents=True)
        self.catalog = Catalog(self.settings.catalog_url)
        self.indexer = Indexer(self.settings, self.catalog, HashingEmbedder(64))
        self.indexer.use_engine(engine)

    def state(self) -> State:
        """(source, ordinal) -> (title, locator, text, vector) of every committed chunk."""
        return _state(self.settings)


def _state(settings: Settings) -> State:
    catalog = Catalog(settings.catalog_url)
    try:
        row = catalog.require_collection("default")
        ids, vectors, _ = catalog.chunk_payloads(row.id)
        by_id = {int(i): v for i, v in zip(ids, vectors, strict=True)}
        with sqlite3.connect(settings.home / "catalog.db") as con:
            titles = dict(con.execute("SELECT source, title FROM documents").fetchall())
        return {
            (c.source, c.ordinal): (titles[c.source], c.locator, c.text, by_id[c.id])
            for c in catalog.iter_chunks("default")
        }
    finally:
        catalog.close()


def _same(ray_state: State, local_state: State) -> None:
    assert ray_state.keys() == local_state.keys() and ray_state
    for key, (title, locator, text, vector) in local_state.items():
        assert ray_state[key][:3] == (title, locator, text)
        np.testing.assert_allclose(ray_state[key][3], vector, atol=1e-5)


def _counts(report: IngestReport) -> tuple[Any, ...]:
    return (report.added, report.updated, report.unchanged, report.chunks_committed, sorted(report.failed))


def _corpus(folder: Path) -> Path:
    write_corpus(folder, 7)
    (folder / "page.html").write_text("<html><title>Shop</title><body><h1>Hours</h1><p>Open 9-5.</p></body>")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    (folder / "huge.md").write_text("too big " * 1000)  # over max_file_bytes (4096)
    (folder / "image.png").write_bytes(b"\x89PNG")
    return folder


def test_files_match_a_local_ingest_and_a_rerun_adds_nothing(ray_cluster: str, tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "docs")
    local = Home(tmp_path / "local", "local")
    on_ray = Home(tmp_path / "ray", "ray")
    expected = local.indexer.ingest_paths([corpus], "default")
    report = on_ray.indexer.ingest_paths([corpus], "default")
    assert _counts(report) == _counts(expected)
    assert {Path(s).name for s, _ in report.failed} == {"broken.pdf", "huge.md"}  # per item, same reasons
    assert report.unsupported == expected.unsupported and report.chunks_embedded == expected.chunks_embedded
    _same(on_ray.state(), local.state())

    again = on_ray.indexer.ingest_paths([corpus], "default")
    assert (again.added, again.updated, again.chunks_committed) == (0, 0, 0)
    assert again.unchanged == 8 and again.version == report.version

    (corpus / "doc0.md").write_text("# Changed\n\nA new text entirely.")
    changed = on_ray.indexer.ingest_paths([corpus], "default")
    local.indexer.ingest_paths([corpus], "default")
    assert (changed.updated, changed.unchanged) == (1, 7)
    _same(on_ray.state(), local.state())

    (corpus / "doc1.md").write_text("# Longer\n\nThis text is over the run's budget of characters.")
    over = on_ray.indexer.ingest_paths([corpus], "default", max_chars=20)  # a server job's text budget
    assert _counts(over) == _counts(local.indexer.ingest_paths([corpus], "default", max_chars=20))
    assert over.updated == 0 and "text limit" in dict(over.failed)[str((corpus / "doc1.md").resolve())]


def test_rows_match_a_local_ingest_over_several_windows(ray_cluster: str, tmp_path: Path) -> None:
    from almanac.indexer.ray_engine import RayStage

    db_path = tmp_path / "shop.db"
    with sqlite3.connect(db_path) as con:
        con.execute("CREATE TABLE cars (id INTEGER PRIMARY KEY, name TEXT, horsepower INTEGER)")
        con.executemany("INSERT INTO cars VALUES (?, ?, ?)", [(i, f"Car {i}", 80 + i) for i in range(30)])
    db = SourceDatabase("shop", f"sqlite:///{db_path}")
    local = Home(tmp_path / "local", "local")
    on_ray = Home(tmp_path / "ray", "local")
    on_ray.indexer.remote = RayStage(on_ray.settings, window_items=20)  # two windows
    try:
        expected = local.indexer.ingest_tables(db, ["cars"], "default")
        report = on_ray.indexer.ingest_tables(db, ["cars"], "default")
        assert _counts(report) == _counts(expected) and report.added == 30
        _same(on_ray.state(), local.state())
        with sqlite3.connect(db_path) as con:
            con.execute("UPDATE cars SET horsepower = 1 WHERE id = 3")
            con.execute("DELETE FROM cars WHERE id = 4")
        again = on_ray.indexer.ingest_tables(db, ["cars"], "default")
        local.indexer.ingest_tables(db, ["cars"], "default")
        assert (again.added, again.updated, again.unchanged, again.removed) == (0, 1, 28, 1)
        _same(on_ray.state(), local.state())
    finally:
        db.close()


def _environment(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ALMANAC_HOME": str(home),
        "ALMANAC_EMBEDDING__MODEL": "hashing",
        "ALMANAC_CHUNKING__SIZE_TOKENS": "32",
        "ALMANAC_CHUNKING__OVERLAP_TOKENS": "8",
        "ALMANAC_INGEST__COMMIT_CHUNKS": "8",
    }


def _cli_ingest(corpus: Path, home: Path, *engine: str, kill_after_commit: bool = False) -> None:
    """`almanac -v ingest CORPUS ENGINE...`; with `kill_after_commit`, SIGKILL it once its log shows its
    first commit."""
    cmd = [sys.executable, "-m", "almanac.cli.main", "-v", "ingest", str(corpus), *engine]
    log = home.parent / f"{home.name}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            cmd, env=_environment(home), stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while kill_after_commit and b"event=batch_committed" not in log.read_bytes():
                assert proc.poll() is None, f"finished before its first commit: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, "no commit within 60 s"
                time.sleep(0.05)
            if kill_after_commit:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):  # anything the driver left behind
                os.killpg(proc.pid, signal.SIGKILL)
    if not kill_after_commit:
        assert proc.returncode == 0, log.read_text()[-2000:]


def test_a_killed_driver_resumes_to_the_state_of_a_local_ingest(ray_cluster: str, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "docs", 60)[0].parent
    on_ray = ("--engine", "ray", "--ray-address", ray_cluster)
    _cli_ingest(corpus, tmp_path / "killed", *on_ray, kill_after_commit=True)
    partial = _state(_settings(tmp_path / "killed"))
    assert 0 < len({source for source, _ in partial}) < 60  # killed mid-run, after a commit
    _cli_ingest(corpus, tmp_path / "killed", *on_ray)
    _cli_ingest(corpus, tmp_path / "local")
    final, local = _state(_settings(tmp_path / "killed")), _state(_settings(tmp_path / "local"))
    _same(final, local)
    assert all(final[key][2] == text for key, (_, _, text, _) in partial.items())  # nothing committed lost


def test_jobs_take_an_engine(tmp_path: Path) -> None:
    from almanac.server.jobs.request import JobRequest

    settings = _settings(tmp_path / "home")
    (settings.home / "inbox" / "docs").mkdir(parents=True)
    catalog = Catalog(settings.catalog_url)
    requests, body = JobRequest(settings, catalog), {"kind": "folder", "path": "docs"}
    try:
        assert "engine" not in requests.client_job(body | {"engine": "local"})[1]
        assert requests.client_job(body | {"engine": "ray"})[1]["engine"] == "ray"
        with pytest.raises(InputError, match="use 'local' or 'ray'"):
            requests.client_job(body | {"engine": "spark"})
    finally:
        catalog.close()


def test_the_writer_refuses_precomputed_vectors_of_another_dimension(tmp_path: Path) -> None:
    from almanac.core.errors import IndexMismatchError
    from almanac.core.types import ChunkDraft
    from almanac.indexer.batch_writer import PendingDocument
    from almanac.indexer.chunker import chunk_hash

    home = Home(tmp_path / "home", "local")
    chunk = ChunkDraft("red car", "", 0, chunk_hash("red car", ""))
    wrong = np.ones((1, 32), np.float32)  # the collection holds 64-dimensional vectors
    doc = PendingDocument("x.md", "document", "X", "h", 0.0, 7, [chunk], vectors=wrong)
    with pytest.raises(IndexMismatchError, match="dimension 64"), home.indexer._writer("default") as (w, _):
        w.add(doc)
    assert home.state() == {}
