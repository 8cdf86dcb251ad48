"""Row addresses round-trip whatever the key values hold."""

from __future__ import annotations

import pytest

from almanac.core.row_text import row_key_from_uri
from almanac.core.types import RowKey


@pytest.mark.parametrize(
    "key",
    [
        (("id", "3"),),
        (("bike_id", "3"), ("slot", "front,left")),
        (("a", "x=y,b=z"), ("b", "/slash/")),
        (("name", "naïve café 100%"),),
        (("k", ""),),
    ],
)
def test_uri_round_trip(key: tuple[tuple[str, str], ...]) -> None:
    row = RowKey("shop", "parts", key)
    assert row_key_from_uri(row.uri()) == row


def test_commas_in_values_do_not_split_columns() -> None:
    uri = RowKey("s", "t", (("a", "1,b=2"),)).uri()
    assert row_key_from_uri(uri).key == (("a", "1,b=2"),)
