"""`almanac serve` refuses a non-loopback address while no API key exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from almanac.cli.main import main
from almanac.cli.serve_cmd import check_bind, is_loopback
from almanac.core.catalog import Catalog
from almanac.core.errors import ConfigError
from almanac.core.settings import Settings
from almanac.server.keys.key_store import KeyStore


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("::", False), ("10.1.2.3", False), ("no-such-host.invalid", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_on_all_interfaces_without_keys_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path))
    assert main(["serve", "--host", "0.0.0.0", "--port", "8765"]) == 2
    assert "almanac keys create --scope admin" in capsys.readouterr().err


def test_with_a_key_any_address_may_be_bound(tmp_path: Path) -> None:
    catalog = Catalog(Settings(home=tmp_path).catalog_url)
    keys = KeyStore(catalog)
    with pytest.raises(ConfigError):
        check_bind("0.0.0.0", keys.has_keys())
    keys.create("admin", None)
    check_bind("0.0.0.0", keys.has_keys())  # no error
    catalog.close()
