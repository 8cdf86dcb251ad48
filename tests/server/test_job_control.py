"""Jobs a client controls and shares: cancel (queued or running), keys taking turns on the one worker, a job
giving the worker up after its slice, a text budget per job, and refused uploads removed from disk."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.settings import Settings
from almanac.indexer.pipeline import Indexer
from almanac.indexer.writer_lock import WriterLock
from almanac.server.jobs.fair_share import FairShare
from almanac.server.jobs.runner import JobRunner
from almanac.server.jobs.store import JobStore
from tests.server.ops_fixtures import CORPUS, ops_client, ops_settings, write_corpus

DONE = ("succeeded", "failed", "cancelled")


def make_runner(settings: Settings) -> JobRunner:
    catalog = Catalog(settings.catalog_url)
    embedder = HashingEmbedder(settings.embedding.hashing_dimension)
    return JobRunner(
        settings, catalog, lambda p: Indexer(settings, catalog, embedder, p), poll_s=0.05, lock_poll_s=0.05
    )


def wait_state(runner: JobRunner, job_id: str, states: tuple[str, ...], timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while (state := runner.get(job_id).state) not in states:
        assert time.monotonic() < deadline, f"job {job_id} is still {state}"
        time.sleep(0.02)
    return state


def test_a_queued_job_is_cancelled_at_once_and_never_runs(tmp_path: Path) -> None:
    settings = ops_settings(tmp_path / "home")
    write_corpus(settings.home / "inbox" / "batch", CORPUS)
    runner = make_runner(settings)  # not started: the job stays queued
    job = runner.submit({"kind": "folder", "path": "batch"})
    assert runner.cancel(job.id).state == "cancelled"
    runner.start()
    try:
        time.sleep(0.3)
        assert runner.get(job.id).state == "cancelled"
        assert runner.catalog.collection("default") is None  # nothing was ingested
    finally:
        runner.stop()


def test_a_running_job_stops_between_items_when_cancelled(tmp_path: Path) -> None:
    settings = ops_settings(tmp_path / "home")
    write_corpus(settings.home / "inbox" / "batch", CORPUS)
    runner = make_runner(settings)
    runner.start()
    try:
        with WriterLock(settings.home):  # the job runs but waits for the lock, as behind `almanac ingest`
            job = runner.submit({"kind": "folder", "path": "batch"})
            while runner.get(job.id).message is None:
                time.sleep(0.02)
            assert runner.cancel(job.id).state == "cancelling"
            assert wait_state(runner, job.id, DONE) == "cancelled"
        assert runner.get(job.id).report is None
    finally:
        runner.stop()


def test_cancelling_ends_cancelled_after_a_restart(tmp_path: Path) -> None:
    settings = ops_settings(tmp_path / "home")
    write_corpus(settings.home / "inbox" / "batch", CORPUS)
    dead = make_runner(settings)  # stands for a server killed while stopping a cancelled job
    job = dead.submit({"kind": "folder", "path": "batch"})
    assert dead.store.claim_next() is not None
    assert dead.store.cancel(job.id).state == "cancelling"
    runner = make_runner(settings)
    runner.start()
    try:
        assert runner.get(job.id).state == "cancelled"
    finally:
        runner.stop()


def test_owners_take_turns_on_the_worker(tmp_path: Path) -> None:
    settings = ops_settings(tmp_path / "home")
    write_corpus(settings.home / "inbox" / "batch", CORPUS)
    runner = make_runner(settings)
    a1, a2 = (runner.submit({"kind": "folder", "path": "batch"}, owner="alm_a") for _ in range(2))
    b1 = runner.submit({"kind": "folder", "path": "batch"}, owner="alm_b")
    share, store = FairShare(slice_s=30), JobStore(runner.catalog)
    order = []
    for at in range(3):
        claimed = store.claim_next(share.pick)
        assert claimed is not None
        share.served(claimed.spec["owner"], at=float(at))
        order.append(claimed.id)
    assert order == [a1.id, b1.id, a2.id]  # without the fair pick: a1, a2, b1


def test_a_long_job_gives_the_worker_up_to_another_key_and_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ops_settings(tmp_path / "home", job_slice_s=0.05)
    many = {
        f"note{i:02d}.md": f"# Note {i}\n\nThe ferry number {i} leaves pier {i * 7}.\n" for i in range(12)
    }
    write_corpus(settings.home / "inbox" / "big", many)
    write_corpus(settings.home / "inbox" / "small", CORPUS)
    runner = make_runner(settings)
    caplog.set_level(logging.INFO, logger="almanac.server.jobs")
    with WriterLock(settings.home):  # both queued before either runs
        runner.start()
        big = runner.submit({"kind": "folder", "path": "big", "collection": "a"}, owner="alm_a")
        while runner.get(big.id).message is None:
            time.sleep(0.02)
        small = runner.submit({"kind": "folder", "path": "small", "collection": "b"}, owner="alm_b")
    try:
        assert wait_state(runner, small.id, DONE) == "succeeded"
        assert wait_state(runner, big.id, DONE) == "succeeded"
    finally:
        runner.stop()
    assert "event=job_yielded" in caplog.text
    assert runner.catalog.stats("a").documents == 12 and runner.catalog.stats("b").documents == 2


def test_a_job_past_its_text_budget_reports_the_rest_as_failed(tmp_path: Path) -> None:
    settings = ops_settings(tmp_path / "home", max_job_text_chars=100)
    write_corpus(settings.home / "inbox" / "batch", CORPUS)  # two files of about 80 characters each
    runner = make_runner(settings)
    runner.start()
    try:
        job = runner.submit({"kind": "folder", "path": "batch"})
        assert wait_state(runner, job.id, DONE) == "succeeded"
    finally:
        runner.stop()
    done = runner.get(job.id)
    [error] = done.errors
    assert "text limit" in error["reason"] and "MAX_JOB_TEXT_CHARS" in error["reason"]
    assert done.report is not None and done.report["added"] == 1


def test_rest_cancel_and_refused_uploads_leave_no_files(tmp_path: Path) -> None:
    with ops_client(ops_settings(tmp_path / "home")) as (client, services):
        files = [("file", ("broken.pdf", b"%PDF-1.4 not really")), ("file", ("fine.md", CORPUS["otters.md"]))]
        body = client.post("/v1/documents", files=files, data={"collection": "docs"}).json()
        assert body["job"]["state"] == "succeeded" and len(body["errors"]) == 1
        uploads = services.settings.home / "uploads" / "docs"
        assert sorted(p.name for p in uploads.iterdir()) == ["fine.md"]  # the refused one is gone

        assert client.delete("/v1/jobs/job_unknown").status_code == 404
        assert client.delete("/v1/jobs/..%2F..").status_code in (404, 422)
        finished = client.delete(f"/v1/jobs/{body['job']['id']}")
        assert finished.status_code == 200 and finished.json()["state"] == "succeeded"  # left as it was
