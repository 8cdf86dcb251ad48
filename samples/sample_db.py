"""A small SQLite database for the Northwind Cycles demo: a `bikes` table and a `stores` table.

Use it as a module (``create_sample_db(Path("northwind.db"))``) or run it:

    python samples/sample_db.py northwind.db
    almanac ingest-db sqlite:///northwind.db --table bikes --table stores

The file is written next to its destination and renamed into place, so an existing file at that path is
replaced whole, never half-written.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE bikes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    category TEXT NOT NULL,
    frame_material TEXT NOT NULL,
    weight_kg REAL NOT NULL,
    price_eur REAL NOT NULL,
    stock INTEGER NOT NULL
);
CREATE TABLE stores (
    id INTEGER PRIMARY KEY,
    city TEXT NOT NULL,
    address TEXT NOT NULL,
    phone TEXT NOT NULL
);
"""

# (id, name, category, frame_material, weight_kg, price_eur, stock)
BIKES: list[tuple[int, str, str, str, float, float, int]] = [
    (1, "Fjord Tourer", "city", "steel", 15.8, 1149.0, 24),
    (2, "Fjord Tourer 8", "city", "steel", 16.4, 1389.0, 11),
    (3, "Skarv Sport", "road", "aluminium", 9.6, 1299.0, 17),
    (4, "Skarv Pro", "road", "aluminium", 8.9, 1949.0, 6),
    (5, "Storm SL", "road", "carbon", 7.2, 4290.0, 3),
    (6, "Storm Aero", "road", "carbon", 7.6, 5190.0, 0),
    (7, "Vidde", "gravel", "steel", 11.3, 1790.0, 9),
    (8, "Vidde Carbon", "gravel", "carbon", 8.8, 3450.0, 4),
    (9, "Tind Trail", "mountain", "aluminium", 14.1, 2890.0, 5),
    (10, "Lys E", "e-bike", "aluminium", 23.5, 3190.0, 14),
    (11, "Lys E Cargo", "e-bike", "aluminium", 38.0, 5690.0, 2),
    (12, "Pinne 20", "kids", "aluminium", 8.1, 449.0, 31),
]

# (id, city, address, phone): the same stores as documents/store-hours.html
STORES: list[tuple[int, str, str, str]] = [
    (1, "Bergen", "Strandkaien 8, 5013 Bergen, Norway", "+47 55 30 12 00"),
    (2, "Oslo", "Thorvald Meyers gate 51, 0555 Oslo, Norway", "+47 22 71 40 90"),
    (3, "Copenhagen", "Vesterbrogade 112, 1620 København V, Denmark", "+45 33 21 88 07"),
    (4, "Hamburg", "Schanzenstraße 27, 20357 Hamburg, Germany", "+49 40 4319 2260"),
]


def create_sample_db(path: Path) -> Path:
    """Write the sample database to `path` (replacing any file there) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # sqlite creates it with the usual mode
    tmp_name.unlink(missing_ok=True)
    try:
        connection = sqlite3.connect(tmp_name)
        try:
            with connection:
                connection.executescript(SCHEMA)
                connection.executemany("INSERT INTO bikes VALUES (?, ?, ?, ?, ?, ?, ?)", BIKES)
                connection.executemany("INSERT INTO stores VALUES (?, ?, ?, ?)", STORES)
        finally:
            connection.close()
        os.replace(tmp_name, path)
    except BaseException:
        tmp_name.unlink(missing_ok=True)
        raise
    return path


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python samples/sample_db.py OUT.db``."""
    parser = argparse.ArgumentParser(description="Write the Northwind Cycles sample SQLite database.")
    parser.add_argument("out", type=Path, help="where to write the database, e.g. northwind.db")
    args = parser.parse_args(argv)
    path = create_sample_db(args.out)
    print(f"wrote {path} with {len(BIKES)} bikes and {len(STORES)} stores")
    print(f"try: almanac ingest-db sqlite:///{path.resolve()} --table bikes --table stores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
