"""Query and path parameter types shared by the routes, bounded so hostile numbers get a 422, not a 500.

Integers reach SQL as signed 64-bit values; anything larger overflows in the driver. Bounding them here
makes FastAPI answer with the usual validation error before a database is touched.

    >>> MAX_INT64
    9223372036854775807
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_INT64 = 2**63 - 1

Offset = Annotated[int, Query(ge=0, le=MAX_INT64, description="rows to skip (0 to 2**63-1)")]
DocumentId = Annotated[int, Path(ge=1, le=MAX_INT64, description="a document id from GET /v1/documents")]
AdapterName = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="an adapter name from GET /v1/adapters: 1-64 letters, digits, '-', '_' or '.'",
    ),
]
