"""OpenAI model names: which collection and adapter a chat completion runs with.

almanac                       the default collection, the default adapter
almanac:COLLECTION            that collection
almanac@ADAPTER               the default collection with that adapter
almanac:COLLECTION@ADAPTER    both

>>> ModelName.parse("almanac:docs@support-v2")
ModelName(collection='docs', adapter='support-v2')
>>> str(ModelName("docs", None))
'almanac:docs'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from almanac.core.errors import NotFoundError

PREFIX = "almanac"
_NAME = re.compile(
    r"almanac(?::(?P<collection>[A-Za-z0-9][A-Za-z0-9._-]*))?(?:@(?P<adapter>[A-Za-z0-9][A-Za-z0-9._-]*))?"
)


@dataclass(frozen=True, slots=True)
class ModelName:
    """A parsed model id; None parts mean the server's defaults."""

    collection: str | None = None
    adapter: str | None = None

    @classmethod
    def parse(cls, model: str) -> ModelName:
        """Parse `model`; NotFoundError names the scheme when it does not fit."""
        match = _NAME.fullmatch(model.strip())
        if match is None:
            raise NotFoundError(
                f"model {model!r} does not exist; use 'almanac', 'almanac:COLLECTION', 'almanac@ADAPTER' or "
                "'almanac:COLLECTION@ADAPTER' (GET /v1/models lists them)"
            )
        return cls(match["collection"], match["adapter"])

    def __str__(self) -> str:
        collection = f":{self.collection}" if self.collection else ""
        adapter = f"@{self.adapter}" if self.adapter else ""
        return f"{PREFIX}{collection}{adapter}"
