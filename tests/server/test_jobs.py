"""Bulk jobs over REST: folder and database jobs run through the indexer as the one writer, report progress
and per-item errors, are idempotent under Idempotency-Key, wait for a writer lock held elsewhere, resume after
a restart, and their content is searchable as soon as they finish."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.indexer.pipeline import Indexer
from almanac.indexer.writer_lock import WriterLock
from almanac.server.jobs.runner import JobRunner
from almanac.server.jobs.store import JobStore
from almanac.server.services import Services
from tests.server.ops_fixtures import CORPUS, bearer, ops_client, ops_settings, write_corpus

CORRUPT_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> broken"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    settings = ops_settings(tmp_path / "home")
    with ops_client(settings) as pair:
        yield pair


def wait_job(client: TestClient, job_id: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def search_sources(client: TestClient, query: str, collection: str) -> list[str]:
    response = client.post("/v1/search", json={"query": query, "collection": collection, "top_k": 5})
    assert response.status_code == 200, response.text
    return [Path(r["source"]).name for r in response.json()["results"]]


def test_folder_job_succeeds_with_progress_and_item_errors(app: tuple[TestClient, Services]) -> None:
    client, services = app
    write_corpus(services.settings.home / "inbox" / "batch", {**CORPUS, "broken.pdf": CORRUPT_PDF})
    created = client.post("/v1/jobs", json={"kind": "folder", "path": "batch", "collection": "lib"})
    assert created.status_code == 202
    assert created.headers["location"] == f"/v1/jobs/{created.json()['id']}"
    job = wait_job(client, created.json()["id"])
    assert job["state"] == "succeeded"
    assert job["progress"]["items"] == job["progress"]["total"] == 3
    assert job["progress"]["chunks"] >= 2
    [error] = job["errors"]
    assert error["source"].endswith("broken.pdf") and "corrupt" in error["reason"]
    assert job["report"]["added"] == 2
    assert "otters.md" in search_sources(client, "river otter colony Kelmsby weir", "lib")


def test_new_content_is_searchable_after_a_job_without_restart(app: tuple[TestClient, Services]) -> None:
    client, services = app
    inbox = services.settings.home / "inbox"
    write_corpus(inbox / "one", {"otters.md": CORPUS["otters.md"]})
    wait_job(client, client.post("/v1/jobs", json={"kind": "folder", "path": "one"}).json()["id"])
    assert search_sources(client, "Varrow town clock wound by hand", "default") == ["otters.md"]
    version = services.answering.retriever.version("default")

    write_corpus(inbox / "two", {"clocks.md": CORPUS["clocks.md"]})
    job = wait_job(client, client.post("/v1/jobs", json={"kind": "folder", "path": "two"}).json()["id"])
    assert job["state"] == "succeeded"
    assert search_sources(client, "Varrow town clock wound by hand", "default")[0] == "clocks.md"
    assert services.answering.retriever.version("default") > version


def test_idempotency_key_returns_the_same_job(app: tuple[TestClient, Services]) -> None:
    client, services = app
    write_corpus(services.settings.home / "inbox" / "batch", CORPUS)
    body = {"kind": "folder", "path": "batch"}
    first = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "retry-1"}).json()
    again = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "retry-1"}).json()
    other = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "retry-2"}).json()
    assert first["id"] == again["id"] != other["id"]
    changed = client.post(
        "/v1/jobs", json={**body, "collection": "x"}, headers={"Idempotency-Key": "retry-1"}
    )
    assert changed.status_code == 400 and first["id"] in changed.json()["error"]["message"]
    wait_job(client, first["id"])
    assert len(client.get("/v1/jobs").json()["jobs"]) == 2


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/etc", "outside the folders"),
        ("../..", "outside the folders"),
        ("missing", "no folder"),
        ("", "path"),
    ],
)
def test_folders_outside_the_job_roots_are_refused(
    app: tuple[TestClient, Services], path: str, message: str
) -> None:
    client, services = app
    (services.settings.home / "inbox").mkdir(exist_ok=True)
    response = client.post("/v1/jobs", json={"kind": "folder", "path": path})
    assert response.status_code in (400, 422)
    assert message in response.json()["error"]["message"]


def test_database_job_indexes_rows(app: tuple[TestClient, Services], tmp_path: Path) -> None:
    client, services = app
    db = tmp_path / "garden.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE plants (id INTEGER PRIMARY KEY, name TEXT, height_cm INTEGER)")
        conn.executemany("INSERT INTO plants VALUES (?, ?, ?)", [(1, "foxglove", 120), (2, "yarrow", 60)])
    body = {"kind": "database", "url": f"sqlite:///{db}", "tables": ["plants", "nope"], "collection": "g"}
    job = wait_job(client, client.post("/v1/jobs", json=body).json()["id"])
    assert job["state"] == "succeeded"
    assert job["report"]["added"] == 2
    assert [e["source"] for e in job["errors"]] == ["garden.nope"]
    assert services.catalog.source_urls() == {"garden": f"sqlite:///{db}"}
    # The stored spec names the source, never its URL; a second job can use the name.
    assert "url" not in JobStore(services.catalog).list()[0].as_json()
    again = client.post("/v1/jobs", json={"kind": "database", "source": "garden", "tables": ["plants"]})
    assert wait_job(client, again.json()["id"])["report"]["added"] == 2  # into the default collection


def test_a_database_url_needs_an_admin_key(app: tuple[TestClient, Services]) -> None:
    client, services = app
    write = services.keys.create("write")
    body = {"kind": "database", "url": "sqlite:////tmp/x.db", "tables": ["t"]}
    assert client.post("/v1/jobs", json=body, headers=bearer(write)).status_code == 403
    unknown = client.post("/v1/jobs", json={**body, "url": None, "source": "nope"}, headers=bearer(write))
    assert unknown.status_code == 400 and "registered sources" in unknown.json()["error"]["message"]


def test_a_job_waits_for_the_writer_lock_and_says_so(app: tuple[TestClient, Services]) -> None:
    client, services = app
    write_corpus(services.settings.home / "inbox" / "batch", CORPUS)
    with WriterLock(services.settings.home):  # another writer, like `almanac ingest` in a shell
        job_id = client.post("/v1/jobs", json={"kind": "folder", "path": "batch"}).json()["id"]
        deadline = time.monotonic() + 10
        while not (job := client.get(f"/v1/jobs/{job_id}").json())["message"]:
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        assert job["state"] == "running"
        assert "waiting for the writer lock" in job["message"] and "pid" in job["message"]
    done = wait_job(client, job_id)
    assert done["state"] == "succeeded" and done["message"] is None
    assert done["report"]["added"] == 2


def test_a_job_left_running_resumes_in_a_new_runner(tmp_path: Path) -> None:
    settings = ops_settings(tmp_path / "home")
    write_corpus(settings.home / "inbox" / "batch", CORPUS)
    catalog = Catalog(settings.catalog_url)
    embedder = HashingEmbedder(settings.embedding.hashing_dimension)

    def factory(progress: Any) -> Indexer:
        return Indexer(settings, catalog, embedder, progress)

    dead = JobRunner(settings, catalog, factory)  # never started: stands for a server killed mid-job
    job = dead.submit({"kind": "folder", "path": "batch"})
    assert dead.store.claim_next() is not None
    assert dead.get(job.id).state == "running"

    runner = JobRunner(settings, catalog, factory, poll_s=0.1)
    runner.start()
    try:
        done = runner.wait(job.id, 30)
    finally:
        runner.stop()
    assert done.state == "succeeded" and done.report is not None and done.report["added"] == 2
    assert catalog.stats("default").documents == 2


def test_stop_puts_an_unfinished_job_back_in_the_queue(tmp_path: Path) -> None:
    settings = ops_settings(tmp_path / "home")
    write_corpus(settings.home / "inbox" / "batch", CORPUS)
    catalog = Catalog(settings.catalog_url)
    embedder = HashingEmbedder(settings.embedding.hashing_dimension)
    runner = JobRunner(settings, catalog, lambda p: Indexer(settings, catalog, embedder, p), lock_poll_s=0.1)
    with WriterLock(settings.home):
        runner.start()
        job = runner.submit({"kind": "folder", "path": "batch"})
        while runner.get(job.id).message is None:
            time.sleep(0.05)
        runner.stop()
        assert runner.get(job.id).state == "queued"
    runner.start()
    try:
        assert runner.wait(job.id, 30).state == "succeeded"
    finally:
        runner.stop()
