"""Operations: request ids, JSON log lines, the audit log, CORS, and a second `serve` on a busy port."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from almanac.cli.main import main
from almanac.core.adapter_manifest import WEIGHTS_FILE, AdapterManifest
from almanac.core.catalog import Catalog
from almanac.core.log_format import JsonFormatter, RequestIdFilter, request_id_var
from almanac.server.jobs.store import JobStore
from almanac.server.keys.key_store import KeyStore
from tests.server.ops_fixtures import CORPUS, bearer, ops_client, ops_settings

ORIGIN = "https://app.example.com"


def _audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "almanac.audit"]


def test_request_ids_are_kept_when_valid_and_made_otherwise(tmp_path: Path) -> None:
    with ops_client(ops_settings(tmp_path / "home")) as (client, _):
        kept = client.get("/healthz", headers={"X-Request-ID": "trace-1.a_b"})
        assert kept.headers["X-Request-ID"] == "trace-1.a_b"
        for bad in ("x" * 65, "has space", "semi;colon"):
            made = client.get("/healthz", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
            assert made != bad and len(made) == 32
        assert len(client.get("/v1/no-such-route").headers["X-Request-ID"]) == 32  # errors carry it too


def test_admin_actions_are_audited_with_the_key_prefix_and_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ops_settings(tmp_path / "home")
    settings.home.mkdir(parents=True)
    catalog = Catalog(settings.catalog_url)
    key = KeyStore(catalog).create("admin", None)
    catalog.close()
    AdapterManifest("docs-v1", "tiny-base", "2025-01-01T00:00:00Z").save(settings.adapters_dir / "docs-v1")
    (settings.adapters_dir / "docs-v1" / WEIGHTS_FILE).write_bytes(b"weights")
    caplog.set_level(logging.INFO, logger="almanac.audit")
    with ops_client(settings) as (client, _):
        headers = {**bearer(key), "X-Request-ID": "req-42"}
        promoted = client.post("/v1/adapters/docs-v1/promote", params={"force": "true"}, headers=headers)
        assert promoted.status_code == 200
        assert client.post("/v1/adapters/rollback", headers=bearer(key)).status_code == 200
    lines = _audit_lines(caplog)
    assert lines[0].startswith(f"event=adapter_promoted actor={key[:12]} request_id=req-42 name=docs-v1")
    assert lines[1].startswith(f"event=adapter_rolled_back actor={key[:12]} request_id=")
    assert all(key not in line for line in lines)


def test_a_document_delete_is_audited(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="almanac.audit")
    with ops_client(ops_settings(tmp_path / "home")) as (client, _):
        parts = [("file", ("otters.md", CORPUS["otters.md"].encode()))]
        uploaded = client.post("/v1/documents", files=parts, data={"collection": "docs"}).json()
        document = uploaded["documents"][0]["id"]
        deleted = client.delete(f"/v1/documents/{document}", headers={"X-Request-ID": "del-1"})
        assert deleted.status_code == 200
    line = _audit_lines(caplog)[0]
    assert line.startswith(f"event=document_deleted actor=anonymous request_id=del-1 document={document}")


def test_cli_key_actions_are_audited_as_local_without_the_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path / "home"))
    caplog.set_level(logging.INFO, logger="almanac.audit")
    assert main(["keys", "create", "--scope", "read"]) == 0
    key = capsys.readouterr().out.splitlines()[0]
    assert main(["keys", "revoke", key[:12]]) == 0
    lines = _audit_lines(caplog)
    assert (
        lines[0] == f"event=key_created actor=local request_id=- prefix={key[:12]} scope=read collection=None"
    )
    assert lines[1] == f"event=key_revoked actor=local request_id=- prefix={key[:12]}"


def test_json_log_lines_carry_the_request_id() -> None:
    record = logging.LogRecord("almanac.server", logging.INFO, __file__, 1, "event=%s n=%d", ("x", 2), None)
    token = request_id_var.set("abc")
    try:
        RequestIdFilter().filter(record)
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["message"] == "event=x n=2" and line["request_id"] == "abc"
    assert line["level"] == "INFO" and line["logger"] == "almanac.server" and line["time"].endswith("Z")


def test_cors_headers_only_for_configured_origins(tmp_path: Path) -> None:
    with ops_client(ops_settings(tmp_path / "closed")) as (client, _):
        assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": ORIGIN}).headers
    with ops_client(ops_settings(tmp_path / "open", cors_origins=[ORIGIN])) as (client, _):
        allowed = client.get("/healthz", headers={"Origin": ORIGIN})
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        other = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        preflight = client.options(
            "/v1/query", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 200


def test_a_second_serve_on_a_busy_port_fails_before_touching_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = ops_settings(tmp_path / "home")
    settings.home.mkdir(parents=True)
    catalog = Catalog(settings.catalog_url)
    jobs = JobStore(catalog)
    job = jobs.create("folder", {"path": str(tmp_path), "collection": "default"})
    assert jobs.claim_next() is not None  # the live server's running job
    monkeypatch.setenv("ALMANAC_HOME", str(settings.home))
    with socket.socket() as live:
        live.bind(("127.0.0.1", 0))
        live.listen()
        port = live.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"port {port}" in err and "in use" in err
    assert jobs.get(job.id).state == "running"
    catalog.close()
