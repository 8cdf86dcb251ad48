"""A home or catalog that cannot work is one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from almanac.cli.main import main


def _not_sqlite(home: Path) -> None:
    home.mkdir()
    (home / "catalog.db").write_text("a text file where the catalog should be, " * 40)


def _truncated(home: Path) -> None:
    home.mkdir()
    db = sqlite3.connect(home / "catalog.db")
    db.execute("CREATE TABLE filler (x TEXT)")
    db.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,)] * 200)
    db.commit()
    db.close()
    data = (home / "catalog.db").read_bytes()
    (home / "catalog.db").write_bytes(data[: len(data) // 3])


def _home_is_a_file(home: Path) -> None:
    home.write_text("not a folder")


def _unopenable(home: Path) -> None:  # stands in for an unreadable home (tests may run as root)
    (home / "catalog.db").mkdir(parents=True)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_not_sqlite, "file is not a database"),
        (_truncated, "malformed"),
        (_home_is_a_file, "is a file, not a folder"),
        (_unopenable, "unable to open database file"),
    ],
    ids=["not-sqlite", "truncated", "home-is-a-file", "unopenable"],
)
@pytest.mark.parametrize("command", [["status"], ["check"], ["search", "x"]])
def test_one_line_and_exit_2_naming_the_home(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make: object,
    says: str,
    command: list[str],
) -> None:
    home = tmp_path / "home"
    make(home)  # type: ignore[operator]
    monkeypatch.setenv("ALMANAC_HOME", str(home))
    monkeypatch.setenv("ALMANAC_EMBEDDING__MODEL", "hashing")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert says in err and f"ALMANAC_HOME={home}" in err and "ALMANAC_CATALOG__URL" not in err
