"""Hostile numbers and bytes at the edge: integers beyond 64 bits, NUL and control characters, each get a
4xx with the usual error shape (never a 500), and the same client keeps working afterwards."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from almanac.server.services import Services
from tests.server.ops_fixtures import ops_client, ops_settings

MAX_INT64 = 2**63 - 1
HUGE = 2**64 + 1
HUGE_TEXT = "9" * 40


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, Services]]:
    shop = tmp_path / "shop.db"
    with sqlite3.connect(shop) as conn:
        conn.execute("CREATE TABLE bikes (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO bikes VALUES (1, 'bike 1')")
    conn.close()
    settings = ops_settings(tmp_path / "home", lookup_tables=["shop.bikes"])
    with ops_client(settings) as (client, services):
        services.catalog.register_source("shop", f"sqlite:///{shop}")
        yield client, services


def assert_refused(response: Any, *statuses: int) -> dict[str, Any]:
    """A 4xx among `statuses` with the {error: {type, message}} shape; returns the error."""
    assert response.status_code in statuses, (response.status_code, response.text)
    error = response.json()["error"]
    assert isinstance(error["type"], str) and isinstance(error["message"], str) and error["message"]
    return error


def assert_still_serving(client: TestClient) -> None:
    """A plain request on the same client still works."""
    assert client.get("/v1/jobs").status_code == 200


@pytest.mark.parametrize("path", ["/v1/documents", "/v1/jobs"])
@pytest.mark.parametrize("offset", [str(HUGE), HUGE_TEXT, str(2**63), "-1"])
def test_offset_out_of_range(app: tuple[TestClient, Services], path: str, offset: str) -> None:
    client, _ = app
    assert_refused(client.get(path, params={"offset": offset}), 422)
    assert_still_serving(client)


@pytest.mark.parametrize("path", ["/v1/documents", "/v1/jobs"])
def test_largest_offset_is_an_empty_page(app: tuple[TestClient, Services], path: str) -> None:
    client, _ = app
    uploaded = client.post("/v1/documents", files=[("file", ("otters.md", b"# Otters\n\nRiver otters.\n"))])
    assert uploaded.status_code == 201, uploaded.text
    response = client.get(path, params={"offset": str(MAX_INT64)})
    assert response.status_code == 200, response.text
    assert response.json()["offset"] == MAX_INT64


@pytest.mark.parametrize("document_id", [str(HUGE), HUGE_TEXT, str(2**63), "0", "-5"])
def test_document_id_out_of_range(app: tuple[TestClient, Services], document_id: str) -> None:
    client, _ = app
    assert_refused(client.delete(f"/v1/documents/{document_id}"), 422)
    assert_still_serving(client)


def test_largest_document_id_is_not_found(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    assert_refused(client.delete(f"/v1/documents/{MAX_INT64}"), 404)
    assert_still_serving(client)


@pytest.mark.parametrize("job_id", [str(HUGE), HUGE_TEXT, "%00", "a%00b", "x" * 300])
def test_hostile_job_id(app: tuple[TestClient, Services], job_id: str) -> None:
    client, _ = app
    assert_refused(client.get(f"/v1/jobs/{job_id}"), 404, 422)
    assert_still_serving(client)


@pytest.mark.parametrize("path", ["bad\u0000name", "\u0000", "in\u0007box", "line\nbreak"])
def test_job_path_with_control_characters(app: tuple[TestClient, Services], path: str) -> None:
    client, _ = app
    response = client.post("/v1/jobs", json={"kind": "folder", "path": path})
    error = assert_refused(response, 400, 422)
    assert "control character" in error["message"]
    assert_still_serving(client)


@pytest.mark.parametrize("value", [HUGE, -HUGE, 2**63, -(2**63) - 1, "bike\u0000 1", "\u0000"], ids=repr)
def test_lookup_value_out_of_range(app: tuple[TestClient, Services], value: object) -> None:
    client, _ = app
    response = client.post("/v1/lookup", json={"table": "shop.bikes", "where": {"id": value}})
    error = assert_refused(response, 400, 422)
    expected = "out of range" if isinstance(value, int) else "NUL"
    assert expected in error["message"]
    assert_still_serving(client)


@pytest.mark.parametrize(
    ("column", "value"),
    [("id", MAX_INT64), ("id", -(2**63)), ("id", 1), ("id", 1e300), ("name", "bike 1"), ("name", HUGE_TEXT)],
    ids=repr,
)
def test_lookup_value_in_range(app: tuple[TestClient, Services], column: str, value: object) -> None:
    client, _ = app
    response = client.post("/v1/lookup", json={"table": "shop.bikes", "where": {column: value}})
    assert response.status_code == 200, response.text
    assert response.json()["count"] == (1 if value in (1, "bike 1") else 0)


def test_lookup_text_beyond_64_bits_for_an_integer_column(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    response = client.post("/v1/lookup", json={"table": "shop.bikes", "where": {"id": HUGE_TEXT}})
    assert (response.status_code, response.json()["rows"]) == (200, [])  # text that does not cast: no row


def test_lookup_limit_beyond_64_bits(app: tuple[TestClient, Services]) -> None:
    client, _ = app
    response = client.post("/v1/lookup", json={"table": "shop.bikes", "limit": HUGE})
    assert_refused(response, 422)
    assert_still_serving(client)
