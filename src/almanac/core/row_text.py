"""Rows as text and back: how a row is rendered for embedding and prompts, made JSON-friendly, addressed.

Typed keys: `RowKey.uri()` stores key values as text, so `row_key_from_uri` gives strings back; `typed_key`
casts each one to its column's Python type (``"3"`` -> ``3`` for an INTEGER, ISO text -> ``datetime``, ...)
so the database compares typed values; a value that does not cast (an integer beyond signed 64 bits
included: no driver binds one) matches no row.

JSON-friendly values (`json_row`): Decimal -> float when the float prints back as the same number, else str
(no silent rounding); date/time -> ISO 8601; timedelta -> seconds; UUID -> str; bytes -> base64.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import unquote
from uuid import UUID

from sqlalchemy import Column

from almanac.core.errors import InputError
from almanac.core.types import RowKey

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # the widest integer a database column holds
_URI = re.compile(r"db://(?P<source>[^/]+)/(?P<table>[^/]+)/(?P<key>.+)", re.DOTALL)


def json_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    """The row with JSON-friendly values (see the module docstring for each type).

    Keys are column names; the mapping is typed `Any` because SQLAlchemy's `RowMapping` also accepts column
    objects as keys.
    """
    return {column: _json_value(value) for column, value in row.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        as_float = float(value)
        return as_float if math.isfinite(as_float) and Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def render_row(table: str, row: Mapping[str, Any]) -> str:
    """One row as one line of text, for embedding and prompts.

    None is ``null``, whitespace runs (newlines too) become one space, Decimals drop trailing zeros, binary
    values show only their size, anything else is ``str(value)``.

    >>> render_row("bikes", {"id": 3, "name": "Trail 29", "weight_kg": 12.5})
    'table: bikes | id: 3 | name: Trail 29 | weight_kg: 12.5'
    """
    parts = [f"table: {table}"] + [f"{column}: {_cell(value)}" for column, value in row.items()]
    return " | ".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"  # binary says nothing to a language model
    if isinstance(value, Decimal):  # SQLite NUMERIC comes back as 12.5000000000
        return format(value.normalize(), "f")
    return " ".join(str(value).split())


def row_key_from_uri(uri: str) -> RowKey:
    """Parse ``db://SOURCE/TABLE/col=val,col=val`` (`RowKey.uri`) back; values come back as strings.

    >>> row_key_from_uri("db://shop/parts/bike_id=3,slot=front%2Cleft").key
    (('bike_id', '3'), ('slot', 'front,left'))
    """
    match = _URI.fullmatch(uri)
    pairs = [part.partition("=") for part in match["key"].split(",")] if match else []
    if not match or not pairs or any(not column or not sep for column, sep, _ in pairs):
        raise InputError(f"{uri!r} is not a row address; expected db://SOURCE/TABLE/column=value,...")
    return RowKey(match["source"], match["table"], tuple((unquote(c), unquote(v)) for c, _, v in pairs))


def coerce_value(column: Column[Any], value: Any) -> Any:
    """Cast a text value to the column's Python type; ValueError/ArithmeticError when it cannot be one."""
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return value
    if not isinstance(value, str):
        return str(value) if kind is str and value is not None else value
    if kind is bool:
        return {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}[value.lower()]
    if kind in (datetime, date, time):
        return kind.fromisoformat(value)
    if kind is int and not INT64_MIN <= int(value) <= INT64_MAX:
        raise OverflowError(f"{value!r} does not fit a 64-bit integer column")
    return kind(value) if kind in (int, float, Decimal, UUID) else value


def typed_key(columns: list[Column[Any]], key: RowKey) -> tuple[Any, ...] | None:
    """The key's text values cast to its columns' types; None when they cannot match a row."""
    values = dict(key.key)
    if set(values) != {c.name for c in columns}:
        return None  # the key was made for another primary key: that row is gone
    try:
        return tuple(coerce_value(c, values[c.name]) for c in columns)
    except (ValueError, ArithmeticError, KeyError):
        return None
