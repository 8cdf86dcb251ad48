"""Documents over REST: multipart upload (saved safely, ingested by the one writer), paginated listing,
delete through the pipeline, size and type limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from almanac.server.services import Services
from tests.server.ops_fixtures import CORPUS, ops_client, ops_settings

LIMIT = 4096


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    with ops_client(ops_settings(tmp_path / "home", max_upload_bytes=LIMIT)) as pair:
        yield pair


def upload(client: TestClient, files: dict[str, bytes | str], collection: str = "docs", **params: object):
    parts = [
        ("file", (name, data.encode() if isinstance(data, str) else data)) for name, data in files.items()
    ]
    return client.post("/v1/documents", files=parts, data={"collection": collection}, params=params)


def found(client: TestClient, query: str, collection: str = "docs") -> list[str]:
    response = client.post("/v1/search", json={"query": query, "collection": collection, "top_k": 3})
    return [Path(r["source"]).name for r in response.json()["results"]]


def test_upload_list_delete(app: tuple[TestClient, Services]) -> None:
    client, services = app
    response = upload(client, {"otters.md": CORPUS["otters.md"], "clocks.txt": CORPUS["clocks.md"]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["job"]["state"] == "succeeded" and body["errors"] == []
    ids = {Path(d["source"]).name: d["id"] for d in body["documents"]}
    assert set(ids) == {"otters.md", "clocks.txt"}
    assert (services.settings.home / "uploads" / "docs" / "otters.md").read_text() == CORPUS["otters.md"]
    assert found(client, "river otter colony Kelmsby weir")[0] == "otters.md"

    page = client.get("/v1/documents", params={"collection": "docs", "limit": 1}).json()
    assert page["total"] == 2 and page["next_offset"] == 1 and len(page["documents"]) == 1
    rest = client.get("/v1/documents", params={"collection": "docs", "offset": 1}).json()
    listed = page["documents"] + rest["documents"]
    assert rest["next_offset"] is None
    assert {d["id"] for d in listed} == set(ids.values())
    assert all(d["kind"] == "document" and d["chunks"] >= 1 and d["updated_at"] for d in listed)
    assert {d["title"] for d in listed} >= {"Otters"}

    deleted = client.delete(f"/v1/documents/{ids['otters.md']}")
    assert deleted.status_code == 200 and deleted.json()["job"]["report"]["removed"] == 1
    assert not (services.settings.home / "uploads" / "docs" / "otters.md").exists()
    left = client.get("/v1/documents", params={"collection": "docs"}).json()["documents"]
    assert [d["id"] for d in left] == [ids["clocks.txt"]]
    assert "otters.md" not in found(client, "river otter colony Kelmsby weir")
    assert client.delete(f"/v1/documents/{ids['otters.md']}").status_code == 404


def test_reupload_replaces_the_same_document(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    first = upload(client, {"note.md": "# Note\n\nThe gate code is 4417.\n"}).json()["documents"]
    second = upload(client, {"note.md": "# Note\n\nThe gate code is 9902.\n"}).json()["documents"]
    assert first[0]["id"] == second[0]["id"]
    assert client.get("/v1/documents", params={"collection": "docs"}).json()["total"] == 1


def test_idempotency_key_on_upload(app: tuple[TestClient, Services]) -> None:
    client, services = app
    files = [("file", ("note.md", b"# Note\n\nThe gate code is 4417.\n"))]
    key = {"Idempotency-Key": "upload-1"}
    first = client.post("/v1/documents", files=files, data={"collection": "docs"}, headers=key).json()
    again = client.post("/v1/documents", files=files, data={"collection": "docs"}, headers=key).json()
    assert first["job"]["id"] == again["job"]["id"] and again["documents"] == first["documents"]
    other = [("file", ("note.md", b"# Note\n\nThe gate code is 9902.\n"))]
    refused = client.post("/v1/documents", files=other, data={"collection": "docs"}, headers=key)
    assert refused.status_code == 400 and "Idempotency-Key" in refused.json()["error"]["message"]
    saved = services.settings.home / "uploads" / "docs" / "note.md"
    assert b"4417" in saved.read_bytes()  # the refused request wrote nothing


def test_unsafe_names_stay_inside_the_uploads_folder(app: tuple[TestClient, Services]) -> None:
    client, services = app
    response = upload(client, {"../../../escape.md": "# Escape\n\nText.\n", ".hidden.md": "# H\n\nx\n"})
    assert response.status_code == 201
    names = sorted(p.name for p in (services.settings.home / "uploads" / "docs").iterdir())
    assert names == ["escape.md", "hidden.md"]
    assert not (services.settings.home.parent / "escape.md").exists()
    bad = upload(client, {"a.md": "x"}, collection="../../x")
    assert bad.status_code == 400 and "collection name" in bad.json()["error"]["message"]


def test_too_large_is_413(app: tuple[TestClient, Services]) -> None:
    client, services = app
    response = upload(client, {"big.md": "x" * (LIMIT + 1)})
    assert response.status_code == 413
    assert "upload limit" in response.json()["error"]["message"]
    assert not (services.settings.home / "uploads").exists()  # checked before anything is written


def test_unsupported_type_is_400_naming_the_supported_ones(app: tuple[TestClient, Services]) -> None:
    client, services = app
    response = upload(client, {"tool.exe": b"MZ\x90\x00", "ok.md": "# Ok\n\nfine\n"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "tool.exe" in message and ".pdf" in message and ".docx" in message and ".md" in message
    assert not (services.settings.home / "uploads" / "docs").exists()  # checked before anything is saved


def test_a_corrupt_file_is_reported_not_ingested(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    body = upload(client, {"broken.pdf": b"%PDF-1.4 not really", "fine.md": "# Fine\n\nAll good.\n"}).json()
    assert [Path(d["source"]).name for d in body["documents"]] == ["fine.md"]
    [error] = body["errors"]
    assert error["source"].endswith("broken.pdf") and "corrupt" in error["reason"]


def test_no_wait_answers_202_with_the_job(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    response = upload(client, {"otters.md": CORPUS["otters.md"]}, wait=0)
    assert response.status_code == 202
    job_id = response.json()["job"]["id"]
    assert response.headers["location"] == f"/v1/jobs/{job_id}"
    deadline = time.monotonic() + 20
    while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] != "succeeded":
        assert time.monotonic() < deadline and job["state"] != "failed", job
        time.sleep(0.05)
    assert [Path(d["source"]).name for d in job["report"]["documents"]] == ["otters.md"]


def test_listing_an_unknown_collection_is_404(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    assert client.get("/v1/documents", params={"collection": "nope"}).status_code == 404
