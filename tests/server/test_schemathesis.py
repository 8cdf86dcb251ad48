"""The OpenAPI contract holds: schemathesis runs every check against a live server and finds nothing.

The server is the real app on uvicorn (127.0.0.1, a free port) over the indexed test corpus (documents and
the SQLite ``shop`` source, open to lookups), with the hashing embedder and the scripted chat model.
Schemathesis (the CLI, as a user would run it) tries every operation in all its phases (examples, coverage,
fuzzing, stateful) with a fixed seed and a few examples each, so the run stays well under a minute.

One setting departs from schemathesis's defaults: a 400 counts as an accepted answer to schema-valid data.
The schema declares 400 on every route that gives it, for requests the schema cannot rule out (a folder
outside the job roots, a filter whose time range is empty, nothing to roll back, an unsupported file type).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI

from almanac.server.app import create_app
from tests.fakes import ScriptedChatModel
from tests.server.app_fixtures import build_services, make_settings
from tests.server.corpus import DOCS, index_corpus, make_shop_db

CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]
"""
EXAMPLES = 5  # per operation and phase; ~1,000 requests in all


def test_the_live_server_meets_its_openapi_contract(
    tmp_path: Path, live_server: Callable[[FastAPI], str]
) -> None:
    pytest.importorskip("schemathesis", reason="schemathesis is not installed (pip install -e '.[dev]')")
    settings = make_settings(tmp_path / "home", lookup_tables=["shop.bikes"])
    index_corpus(settings, DOCS, make_shop_db(tmp_path / "shop.db"))
    services = build_services(settings, ScriptedChatModel(default="The sources do not say."))
    try:
        base = live_server(create_app(services=services))
        assert services.readiness.wait(10)
        output = _run_schemathesis(f"{base}/openapi.json", tmp_path)
    finally:
        services.close()
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts is not None, output[-4000:]
    generated, passed = map(int, counts.groups())
    assert generated == passed and generated > 200, output[-4000:]


def _run_schemathesis(schema_url: str, workdir: Path) -> str:
    """Run `schemathesis run` with every check; returns its output (asserting it found no failure)."""
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    cli = Path(sys.executable).with_name("schemathesis")
    command = [str(cli), "--config-file", str(config), "run", schema_url, "--checks", "all"]
    command += ["--max-examples", str(EXAMPLES), "--seed", "1", "--no-shrink", "--continue-on-failure"]
    done = subprocess.run(  # cwd: its .hypothesis and .schemathesis folders go to the tmp dir
        command, cwd=workdir, capture_output=True, text=True, timeout=240, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-8000:]
    return output
