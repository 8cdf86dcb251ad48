"""API keys: hashed at rest, verified in constant time, listed by prefix, revoked; the `almanac keys` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from almanac.cli.main import main
from almanac.core.catalog import Catalog
from almanac.core.errors import InputError, NotFoundError
from almanac.core.settings import Settings
from almanac.server.keys.key_store import KeyStore, check_key, hash_key


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(Catalog(f"sqlite:///{tmp_path / 'catalog.db'}"))


def test_created_key_verifies_with_its_scope_and_collection(store: KeyStore) -> None:
    assert not store.has_keys()
    key = store.create("write", "docs")
    principal = store.verify(key)
    assert principal is not None
    assert (principal.scope, principal.collection, principal.key_prefix) == ("write", "docs", key[:12])
    assert store.has_keys()


def test_wrong_or_malformed_keys_are_refused(store: KeyStore) -> None:
    key = store.create("read")
    assert store.verify(key) is not None  # the cache of passed keys must not let a near miss through
    assert store.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.verify(key + "x") is None
    assert store.verify("alm_00000000_nothing") is None
    assert store.verify("not-a-key") is None
    assert store.verify("") is None


def test_keys_are_hashed_at_rest(tmp_path: Path, store: KeyStore) -> None:
    keys = [store.create("read"), store.create("read")]
    with store.catalog.engine.connect() as conn:
        stored = [tuple(r) for r in conn.exec_driver_sql("SELECT prefix, key_hash FROM api_keys")]
    store.catalog.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())  # the db file and its WAL
    for key in keys:
        assert key.encode() not in raw
        assert key[12:].encode() not in raw  # the secret part appears nowhere, even in pieces
    hashes = [h for _, h in stored]
    assert all(h.startswith("scrypt$") for h in hashes)
    assert hashes[0].split("$")[4] != hashes[1].split("$")[4]  # a salt per key


def test_hash_round_trip_and_salt() -> None:
    stored = hash_key("alm_12345678_secret")
    assert check_key("alm_12345678_secret", stored)
    assert not check_key("alm_12345678_secreT", stored)
    assert not check_key("alm_12345678_secret", "garbage")
    assert hash_key("same") != hash_key("same")


def test_revoke_stops_a_key_and_list_shows_it(store: KeyStore) -> None:
    key = store.create("admin")
    assert store.verify(key) is not None
    store.revoke(key[:12])
    assert store.verify(key) is None
    assert store.has_keys()  # revoking every key locks the server, it does not open it
    [info] = store.list()
    assert (info.prefix, info.scope, info.revoked) == (key[:12], "admin", True)
    with pytest.raises(NotFoundError, match="keys list"):
        store.revoke("alm_ffffffff")


def test_revoke_from_another_store_is_seen_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    server, cli = KeyStore(Catalog(url)), KeyStore(Catalog(url))
    key = server.create("read")
    assert server.verify(key) is not None  # now cached as passed in the server's store
    cli.revoke(key[:12])
    assert server.verify(key) is None


def test_unknown_scope_is_refused(store: KeyStore) -> None:
    with pytest.raises(InputError, match="read, write, admin"):
        store.create("root")


def test_cli_round_trip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path / "home"))
    assert main(["keys", "create", "--scope", "write", "--collection", "docs"]) == 0
    key = capsys.readouterr().out.splitlines()[0]
    assert key.startswith("alm_")

    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert key[:12] in listed and "write" in listed and "docs" in listed and "active" in listed
    assert key[12:] not in listed

    store = KeyStore(Catalog(Settings().catalog_url))
    assert store.verify(key) is not None

    assert main(["keys", "revoke", key[:12]]) == 0
    capsys.readouterr()
    assert store.verify(key) is None
    assert main(["keys", "list", "--json"]) == 0
    assert '"revoked": true' in capsys.readouterr().out
    assert main(["keys", "revoke", "alm_nothere"]) == 2
    assert "no API key" in capsys.readouterr().err
