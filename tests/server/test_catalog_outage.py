"""The catalog database (PostgreSQL) going away and coming back, through a proxy the test cuts: requests get
one clear 503 with Retry-After, /readyz says unavailable, a job running through the outage goes back to the
queue and finishes once the database is back, and the server recovers without a restart."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from almanac.core.catalog import Catalog
from almanac.core.index_store import IndexStore
from almanac.indexer.consistency import check_collection
from almanac.indexer.writer_lock import WriterLock
from almanac.server.services import Services
from tests.server.ops_fixtures import CORPUS, ops_client, ops_settings, write_corpus
from tests.server.tcp_proxy import TcpProxy


@pytest.fixture
def outage(tmp_path: Path, pg_url: str) -> Iterator[tuple[TestClient, Services, TcpProxy]]:
    url = make_url(pg_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    settings = ops_settings(tmp_path / "home")
    settings.catalog.url = SecretStr(url.set(port=proxy.port).render_as_string(hide_password=False))
    try:
        with ops_client(settings) as (client, services):
            assert services.readiness.wait(30)
            yield client, services, proxy
    finally:
        proxy.cut()


def wait_for(client: TestClient, job_id: str, timeout_s: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"/v1/jobs/{job_id}")
        if response.status_code == 200 and response.json()["state"] in ("succeeded", "failed"):
            return dict(response.json())
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_requests_get_a_clear_503_while_the_catalog_is_down_and_recover(
    outage: tuple[TestClient, Services, TcpProxy],
) -> None:
    client, services, proxy = outage
    write_corpus(services.settings.home / "inbox" / "batch", CORPUS)
    job = client.post("/v1/jobs", json={"kind": "folder", "path": "batch"}).json()
    assert wait_for(client, job["id"])["state"] == "succeeded"
    assert client.get("/readyz").status_code == 200

    proxy.cut()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    search = client.post("/v1/search", json={"query": "river otter colony"})
    assert search.status_code == 503 and search.headers["retry-after"]
    assert search.json()["error"]["type"] == "catalog_unavailable"
    assert "ALMANAC_CATALOG__URL" in search.json()["error"]["message"]

    proxy.resume()
    assert client.get("/readyz").status_code == 200
    hits = client.post("/v1/search", json={"query": "river otter colony Kelmsby"}).json()["results"]
    assert Path(hits[0]["source"]).name == "otters.md"


def test_a_job_running_through_an_outage_finishes_once_the_catalog_is_back(
    outage: tuple[TestClient, Services, TcpProxy], caplog: pytest.LogCaptureFixture
) -> None:
    client, services, proxy = outage
    caplog.set_level(logging.WARNING, logger="almanac.server.jobs.runner")
    write_corpus(services.settings.home / "inbox" / "batch", CORPUS)
    with WriterLock(services.settings.home):  # the job starts and waits; the outage begins meanwhile
        job = client.post("/v1/jobs", json={"kind": "folder", "path": "batch"}).json()
        while not client.get(f"/v1/jobs/{job['id']}").json()["message"]:
            time.sleep(0.05)
        proxy.cut()
    time.sleep(1.0)  # the job fails to write its progress and waits for the catalog
    proxy.resume()
    done = wait_for(client, job["id"])
    assert done["state"] == "succeeded"
    assert "event=job_catalog_lost" in caplog.text  # it did run into the outage, and was requeued
    catalog = Catalog(services.settings.catalog_url)
    try:
        assert catalog.stats("default").documents == 2
        store = IndexStore(services.settings.index_dir, services.settings.index)
        assert check_collection(catalog, store, "default") == []  # what `almanac check` runs
    finally:
        catalog.close()
