"""Authentication over HTTP: 401 without or with a wrong key, 403 without the scope or for another
collection, scopes ordered read < write < admin, and an open server when no key exists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from almanac.server.services import Services
from tests.server.ops_fixtures import bearer, ops_client, ops_settings, write_corpus


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    settings = ops_settings(tmp_path / "home")
    write_corpus(settings.home / "inbox" / "a", {"note.md": "# Note\n\nA small note.\n"})
    with ops_client(settings) as pair:
        yield pair


def test_no_keys_means_open(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    assert client.get("/v1/adapters").status_code == 200
    assert client.get("/v1/jobs").status_code == 200


def test_missing_and_wrong_keys_are_401(app: tuple[TestClient, Services]) -> None:
    client, services = app
    key = services.keys.create("admin")
    for headers in ({}, bearer(key[:-2] + "zz"), bearer("alm_deadbeef_x"), {"Authorization": f"Basic {key}"}):
        response = client.get("/v1/jobs", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["type"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200


def test_scopes_are_ordered(app: tuple[TestClient, Services]) -> None:
    client, services = app
    read, write, admin = (services.keys.create(s) for s in ("read", "write", "admin"))
    job = {"kind": "folder", "path": "a", "collection": "a"}
    expected = {  # (method, path, body) -> statuses for read, write, admin keys
        ("GET", "/v1/jobs", None): (200, 200, 200),
        ("POST", "/v1/jobs", "job"): (403, 202, 202),
        ("GET", "/v1/adapters", None): (403, 403, 200),
    }
    for (method, path, body), statuses in expected.items():
        for key, status in zip((read, write, admin), statuses, strict=True):
            response = client.request(method, path, json=job if body else None, headers=bearer(key))
            assert response.status_code == status, (method, path, key[:12], response.text)
            if status == 403:
                assert response.json()["error"]["type"] == "forbidden"
                assert "scope" in response.json()["error"]["message"]


def test_a_bound_key_only_reaches_its_collection(app: tuple[TestClient, Services]) -> None:
    client, services = app
    key = services.keys.create("write", "a")
    other = client.post(
        "/v1/jobs", json={"kind": "folder", "path": "a", "collection": "b"}, headers=bearer(key)
    )
    assert other.status_code == 403
    assert "bound to collection 'a'" in other.json()["error"]["message"]
    own = client.post("/v1/jobs", json={"kind": "folder", "path": "a"}, headers=bearer(key))
    assert own.status_code == 202
    assert own.json()["collection"] == "a"  # no collection given: the key's own
    assert client.get("/v1/documents?collection=b", headers=bearer(key)).status_code == 403


def test_a_revoked_key_is_refused(app: tuple[TestClient, Services]) -> None:
    client, services = app
    keep, drop = services.keys.create("read"), services.keys.create("read")
    services.keys.revoke(drop[:12])
    assert client.get("/v1/jobs", headers=bearer(drop)).status_code == 401
    assert client.get("/v1/jobs", headers=bearer(keep)).status_code == 200


def test_revoking_every_key_locks_rather_than_opens(app: tuple[TestClient, Services]) -> None:
    client, services = app
    key = services.keys.create("admin")
    services.keys.revoke(key[:12])
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 401
