"""Source databases (SQLite, PostgreSQL, MariaDB): reflection, streaming, live re-reads, guarded lookups."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from almanac.core.errors import InputError, SourceError, UnknownTableError
from almanac.core.row_text import json_row, render_row, row_key_from_uri
from almanac.core.source_db import SourceDatabase, TableInfo, mask_url
from almanac.core.types import RowKey

BIKES = [  # inserted out of key order on purpose
    {"id": 5, "name": "Gravel", "weight_kg": Decimal("9.80")},
    {"id": 2, "name": "Trail 29", "weight_kg": Decimal("12.50")},
    {"id": 9, "name": "Road", "weight_kg": Decimal("7.90")},
    {"id": 1, "name": "Cargo", "weight_kg": Decimal("25.00")},
    {"id": 7, "name": "City", "weight_kg": None},
]
PARTS = [(2, "rear"), (1, "rear"), (2, "front"), (1, "front")]
SLOW_VIEWS = {  # bikes with a column that takes seconds to compute, far past the 150 ms the test allows
    "postgresql": "CREATE VIEW slow_bikes AS SELECT b.*, pg_sleep(5)::text AS slept FROM bikes b",
    "mysql": "CREATE VIEW slow_bikes AS SELECT b.*, SLEEP(5) AS slept FROM bikes b",
    "sqlite": "CREATE VIEW slow_bikes AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
    "WHERE i < 1000000000) SELECT b.*, (SELECT COUNT(*) FROM n) AS slept FROM bikes b",
}


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A scratch database of each kind, seeded with bikes (pk id), parts (pk bike_id+slot), notes (no pk)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
    else:
        url = request.getfixturevalue("pg_url" if request.param == "postgresql" else "mysql_url")
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    bikes = sa.Table(
        "bikes",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(100)),
        sa.Column("weight_kg", sa.Numeric(6, 2)),
    )
    parts = sa.Table(
        "parts",
        meta,
        sa.Column("bike_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("slot", sa.String(20), primary_key=True),
        sa.Column("part", sa.String(100)),
    )
    sa.Table("notes", meta, sa.Column("body", sa.String(100)))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(bikes.insert(), BIKES)
        conn.execute(parts.insert(), [{"bike_id": b, "slot": s, "part": f"{s} wheel {b}"} for b, s in PARTS])
        conn.exec_driver_sql(SLOW_VIEWS[engine.dialect.name])
    engine.dispose()
    return url


@pytest.fixture
def writer(url: str) -> Iterator[sa.Engine]:
    """A separate, writable engine standing in for the application that owns the database."""
    engine = sa.create_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(url: str) -> Iterator[SourceDatabase]:
    source = SourceDatabase("shop", url, connect_timeout_s=2)
    yield source
    source.close()


def test_check_table_reflects_columns_and_primary_key(db: SourceDatabase) -> None:
    assert db.check_table("bikes") == TableInfo("bikes", ["id", "name", "weight_kg"], ["id"])
    assert db.check_table("parts").primary_key == ["bike_id", "slot"]


def test_check_table_on_a_missing_table_lists_the_tables_that_exist(db: SourceDatabase) -> None:
    with pytest.raises(UnknownTableError, match="'bykes' does not exist") as caught:
        db.check_table("bykes")
    assert "bikes" in str(caught.value) and "parts" in str(caught.value)


def test_check_table_without_primary_key_says_to_add_one(db: SourceDatabase) -> None:
    with pytest.raises(UnknownTableError, match=r"no primary key.*add one"):
        db.check_table("notes")


def test_iter_rows_streams_every_row_in_primary_key_order(db: SourceDatabase) -> None:
    rows = list(db.iter_rows("bikes", batch=2))
    assert [key.key for key, _ in rows] == [(("id", b["id"]),) for b in sorted(BIKES, key=lambda b: b["id"])]
    assert {key.uri(): row["name"] for key, row in rows}["db://shop/bikes/id=2"] == "Trail 29"
    parts = [key.key for key, _ in db.iter_rows("parts", batch=3)]
    assert parts == [(("bike_id", b), ("slot", s)) for b, s in sorted(PARTS)]


@pytest.mark.parametrize("url", ["postgresql"], indirect=True)
def test_iter_rows_fetches_batches_from_a_server_side_cursor(db: SourceDatabase, writer: sa.Engine) -> None:
    with db.read_only() as conn:  # the pool hands this same connection to iter_rows next
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    rows = db.iter_rows("bikes", batch=2)
    next(rows), next(rows)  # SQLAlchemy prefetches one row, then fetches `batch` at a time
    with writer.connect() as conn:
        query = conn.execute(
            sa.text("SELECT query FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
        ).scalar()
    rows.close()
    assert query is not None and query.startswith("FETCH FORWARD 2")


def test_read_rows_reflects_updates_and_deletes_made_after_indexing(
    db: SourceDatabase, writer: sa.Engine
) -> None:
    indexed = [key for key, _ in db.iter_rows("bikes")] + [key for key, _ in db.iter_rows("parts")]
    stored = [row_key_from_uri(key.uri()) for key in indexed]  # what the catalog gives back: text values
    with writer.begin() as conn:
        conn.execute(sa.text("UPDATE bikes SET name = 'Trail 29 v2' WHERE id = 2"))
        conn.execute(sa.text("DELETE FROM bikes WHERE id = 9"))
        conn.execute(sa.text("DELETE FROM parts WHERE bike_id = 1 AND slot = 'rear'"))
    gone = [RowKey("shop", "bikes", (("id", "404"),)), RowKey("shop", "bikes", (("id", "not-a-number"),))]
    live = db.read_rows(stored + gone)
    by_uri = {key.uri(): row for key, row in live.items()}
    assert by_uri["db://shop/bikes/id=2"]["name"] == "Trail 29 v2"
    assert by_uri["db://shop/bikes/id=9"] is None
    assert by_uri["db://shop/bikes/id=5"]["name"] == "Gravel"
    assert by_uri["db://shop/parts/bike_id=1,slot=rear"] is None
    assert by_uri["db://shop/parts/bike_id=1,slot=front"]["part"] == "front wheel 1"
    assert by_uri["db://shop/bikes/id=404"] is None and by_uri["db://shop/bikes/id=not-a-number"] is None
    assert set(live) == set(stored + gone)


def test_lookup_returns_json_friendly_rows_for_allowed_columns(db: SourceDatabase) -> None:
    rows = db.lookup("bikes", {"name": "Trail 29"}, 10, row_cap=5, timeout_ms=2000, allowed_columns=["name"])
    assert rows == [{"id": 2, "name": "Trail 29", "weight_kg": 12.5}]
    assert json.loads(json.dumps(rows)) == rows
    assert db.lookup("bikes", {"id": "7"}, 10, row_cap=5, timeout_ms=2000)[0]["weight_kg"] is None


def test_lookup_refuses_unknown_and_disallowed_columns_and_tables(db: SourceDatabase) -> None:
    with pytest.raises(InputError, match=r"'weight_kg'.*allowed columns: id, name"):
        db.lookup("bikes", {"weight_kg": 9}, 5, row_cap=5, timeout_ms=2000, allowed_columns=["id", "name"])
    with pytest.raises(InputError, match="'colour'"):
        db.lookup("bikes", {"colour": "red"}, 5, row_cap=5, timeout_ms=2000)
    with pytest.raises(InputError, match="text, numbers"):
        db.lookup("bikes", {"name": ["Road"]}, 5, row_cap=5, timeout_ms=2000)
    with pytest.raises(UnknownTableError, match="'users'"):
        db.lookup("users", {}, 5, row_cap=5, timeout_ms=2000)


def test_lookup_clamps_the_limit_to_the_row_cap(db: SourceDatabase) -> None:
    rows = db.lookup("bikes", {}, 100, row_cap=2, timeout_ms=2000)
    assert [row["id"] for row in rows] == [1, 2]
    assert len(db.lookup("bikes", {}, 3, row_cap=50, timeout_ms=2000)) == 3


def test_lookup_binds_injection_attempts_as_plain_values(db: SourceDatabase, writer: sa.Engine) -> None:
    for column in ("name", "id"):
        assert db.lookup("bikes", {column: "x' OR '1'='1"}, 10, row_cap=10, timeout_ms=2000) == []
    assert db.lookup("bikes", {"name": "Road'; DELETE FROM bikes; --"}, 10, row_cap=10, timeout_ms=2000) == []
    with writer.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM bikes")).scalar_one() == len(BIKES)


def test_the_read_only_transaction_refuses_writes(db: SourceDatabase, writer: sa.Engine) -> None:
    with pytest.raises(SourceError, match="reading source 'shop'"), db.read_only(timeout_ms=2000) as conn:
        conn.execute(sa.text("UPDATE bikes SET name = 'hacked' WHERE id = 2"))
    with writer.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM bikes WHERE id = 2")).scalar_one() == "Trail 29"


def test_a_slow_lookup_is_stopped_and_the_connection_stays_usable(db: SourceDatabase) -> None:
    started = time.monotonic()
    with pytest.raises(SourceError, match="took too long"):
        db.lookup("slow_bikes", {"id": 2}, 5, row_cap=5, timeout_ms=150)
    assert time.monotonic() - started < 3
    assert len(list(db.iter_rows("bikes"))) == len(BIKES)  # no timeout left behind on a pooled connection
    if db.dialect == "mysql":
        with db.read_only() as conn:
            assert float(conn.execute(sa.text("SELECT @@SESSION.max_statement_time")).scalar_one()) == 0


@pytest.mark.parametrize(
    "bad_url",
    [
        "postgresql+psycopg://app:s3cret@127.0.0.1:1/shop",
        "mysql+pymysql://app:s3cret@127.0.0.1:1/shop",
        "postgresql+psycopg://app@127.0.0.1:1/shop?password=s3cret",
    ],
)
def test_an_unreachable_server_is_a_source_error_with_the_password_masked(bad_url: str) -> None:
    db = SourceDatabase("shop", bad_url, connect_timeout_s=1)
    with pytest.raises(SourceError, match=r"cannot reach .*127\.0\.0\.1.*check the host") as caught:
        db.check_table("bikes")
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


def test_a_missing_sqlite_file_or_bad_url_is_a_source_error(tmp_path) -> None:
    with pytest.raises(SourceError, match="no SQLite database file"):
        SourceDatabase("shop", f"sqlite:///{tmp_path / 'typo.db'}")
    assert not (tmp_path / "typo.db").exists()
    with pytest.raises(SourceError, match="cannot open source URL"):
        SourceDatabase("shop", "nosuchdb://u:s3cret@h/x")


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("mysql+pymysql://root:p%40ss@db:3306/shop") == "mysql+pymysql://root:***@db:3306/shop"
    assert mask_url("sqlite:////data/shop.db") == "sqlite:////data/shop.db"
    assert "s3cret" not in mask_url("not a url://u:s3cret@host")


def test_render_row_is_one_line_per_row() -> None:
    row = {"id": 3, "name": "Trail\n 29", "weight_kg": Decimal("12.50"), "notes": None, "photo": b"\x00\x01"}
    text = render_row("bikes", row)
    assert text == "table: bikes | id: 3 | name: Trail 29 | weight_kg: 12.5 | notes: null | photo: <2 bytes>"


def test_json_row_keeps_precision_it_cannot_represent_as_float() -> None:
    row = json_row({"a": Decimal("0.1"), "b": Decimal("12345678901234567890.123"), "c": b"hi", "d": None})
    assert row == {"a": 0.1, "b": "12345678901234567890.123", "c": "aGk=", "d": None}


@pytest.mark.parametrize(
    "key",
    [
        RowKey("shop", "bikes", (("id", 3),)),
        RowKey("shop", "parts", (("bike_id", 1), ("slot", "front"))),
        RowKey("shop", "docs", (("path", "a/b=c.txt"),)),
        RowKey("shop", "tags", (("name", "red, blue"), ("kind", "colour"))),
    ],
)
def test_row_key_from_uri_inverts_uri(key: RowKey) -> None:
    parsed = row_key_from_uri(key.uri())
    assert parsed.uri() == key.uri()
    assert parsed.key == tuple((column, str(value)) for column, value in key.key)


@pytest.mark.parametrize(
    "uri", ["db://shop/bikes/", "db://shop/bikes/3", "file://x/y/id=1", "db://shop/id=1"]
)
def test_row_key_from_uri_rejects_what_is_not_a_row_address(uri: str) -> None:
    with pytest.raises(InputError, match="not a row address"):
        row_key_from_uri(uri)
