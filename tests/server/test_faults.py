"""Faults a server must survive, with real processes: the server SIGKILLed during an upload job, the writer
SIGKILLed while a server serves, and the disk filling up during a publish."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.index_store import IndexStore
from almanac.core.settings import Settings
from almanac.server.retrieval.retriever import Retriever
from tests.indexer.crash_harness import environment, ingest, make_corpus, snapshot_state
from tests.server.app_fixtures import free_port

REPO = Path(__file__).resolve().parents[2]


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.server.serve_fakes", str(port)],
        env=environment(home),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the server did not become ready")


def test_a_server_killed_during_an_upload_job_resumes_it_after_restart(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    corpus = make_corpus(tmp_path / "corpus", files=60)
    files = [("file", (p.name, p.read_bytes())) for p in sorted(corpus.iterdir())[:20]]
    server = start_server(home, port)
    base = f"http://127.0.0.1:{port}"
    try:
        job = httpx.post(f"{base}/v1/documents", files=files, data={"wait": "0"}, timeout=30).json()["job"]
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/v1/jobs/{job['id']}").json()["state"] == "queued":
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    server = start_server(home, port)
    try:
        deadline = time.monotonic() + 60
        while (done := httpx.get(f"{base}/v1/jobs/{job['id']}").json())["state"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline, done
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    assert done["state"] == "succeeded" and done["errors"] == []
    state, problems = snapshot_state(home)
    assert problems == []  # what `almanac check` reports
    assert len({source for source, _ in state}) == 20


def test_a_writer_killed_again_and_again_never_makes_the_server_serve_a_torn_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    corpus = make_corpus(tmp_path / "corpus", files=120)
    assert ingest(make_corpus(tmp_path / "first", files=2), home)  # something to serve from the start
    settings = Settings(home=home, embedding={"model": "hashing"})
    catalog = Catalog(settings.catalog_url)
    retriever = Retriever(
        catalog, HashingEmbedder(384), IndexStore(settings.index_dir, settings.index), settings.retrieval
    )
    seen: list[tuple[int, int, int, bool]] = []  # (version, vectors served, vectors recorded, rebuilt)
    errors: list[BaseException] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                retriever.search("w17 w230", "default", 5)
                snapshot = retriever._served["default"]
                recorded = catalog.latest_version(catalog.require_collection("default").id)
                if recorded is not None and recorded.version == snapshot.version:
                    seen.append(
                        (snapshot.version, len(snapshot.index), recorded.vector_count, snapshot.rebuilt)
                    )
            except BaseException as exc:  # any error while serving fails the test
                errors.append(exc)
                return

    reader = threading.Thread(target=serve)
    reader.start()
    try:
        for delay in (0.3, 0.6, 0.9, 1.2, 1.5):
            ingest(corpus, home, kill_after=delay)
        ingest(corpus, home)
    finally:
        stop.set()
        reader.join()
        catalog.close()
    assert errors == []
    versions = {version for version, *_ in seen}
    assert len(versions) >= 3, versions  # the reader did follow new versions while writers died
    assert all(served == recorded and not rebuilt for _, served, recorded, rebuilt in seen)


def _limit_file_size(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE (POSIX)")
def test_a_full_disk_during_a_publish_keeps_the_previous_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert ingest(make_corpus(tmp_path / "first", files=5), home)
    before, problems = snapshot_state(home)
    assert problems == [] and before
    largest = max(p.stat().st_size for p in home.rglob("*") if p.is_file())
    big = make_corpus(tmp_path / "big", files=400, seed=11)
    proc = subprocess.run(
        [sys.executable, "-m", "almanac.cli.main", "ingest", str(big)],
        env=environment(home) | {"ALMANAC_INGEST__COMMIT_CHUNKS": "100000"},
        capture_output=True,
        preexec_fn=lambda: _limit_file_size(largest + 64 * 1024),
        timeout=300,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr.decode() and "check the free disk space" in proc.stderr.decode()
    after, problems = snapshot_state(home)
    assert problems == []  # no partial file is used: catalog and index agree
    assert after == before  # the previous version is what is served
    settings = Settings(home=home, embedding={"model": "hashing"})
    catalog = Catalog(settings.catalog_url)
    try:
        snapshot = IndexStore(settings.index_dir, settings.index).load(catalog, "default")
        assert not snapshot.rebuilt
    finally:
        catalog.close()
    assert ingest(big, home)  # with room again, the same ingest goes through
    assert len({s for s, _ in snapshot_state(home)[0]}) == 405
    assert not [p for p in home.rglob("*") if p.name.endswith((".tmp", ".part"))], os.listdir(home)
