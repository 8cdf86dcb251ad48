"""The worker side of ingestion on Ray: parse, chunk and embed batches of items; never the catalog or index.

Ray Data runs `ItemEmbedder` as a pool of actors (indexer.ray_engine). Each actor builds the collection's
embedder and chunker once, from a spec of plain values (`worker_spec`), then turns each batch of items into
result columns, one row per item:

    in:  source, name (a file's name, "" for a row), data (file bytes or the row's text), locator
    out: source, title, chunks (JSON [[text, locator, content_hash], ...]), vectors (float32 bytes), error,
         chars (characters of text parsed)

A file that cannot be read gets its reason in `error`, as a local ingest reports it. Vectors come from the
same embedder class and precision as the collection's, so they match a local ingest within float error.

    >>> spec = {"model": "hashing", "device": "cpu", "batch_size": 8, "hashing_dimension": 16,
    ...         "precision": "fp32", "models_dir": "", "size_tokens": 16, "overlap_tokens": 2,
    ...         "max_file_bytes": 1000, "max_text_chars": 1000}
    >>> out = ItemEmbedder(spec)({"source": np.array(["a.md"], dtype=object),
    ...     "name": np.array(["a.md"], dtype=object), "data": np.array([b"# A\\n\\nred car"], dtype=object),
    ...     "locator": np.array([""], dtype=object)})
    >>> out["title"][0], decode_chunks(out["chunks"][0])[0].text, len(out["vectors"][0]) // 4
    ('A', 'red car', 16)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from almanac.core.embedder import build_embedder
from almanac.core.errors import AlmanacError
from almanac.core.settings import EmbeddingSettings, Settings
from almanac.core.types import ChunkDraft, Section
from almanac.indexer.batch_writer import embed_text
from almanac.indexer.chunker import Chunker
from almanac.indexer.readers import read_bytes

Columns = dict[str, np.ndarray]


def worker_spec(settings: Settings, precision: str) -> dict[str, Any]:
    """What a worker needs, as plain values: the embedding model in the collection's `precision`, the
    chunk sizes and the file size limit."""
    embedding = settings.embedding
    return {
        "model": embedding.model,
        "device": embedding.device,
        "batch_size": embedding.batch_size,
        "hashing_dimension": embedding.hashing_dimension,
        "precision": precision,
        "models_dir": str(settings.models_dir),
        "size_tokens": settings.chunking.size_tokens,
        "overlap_tokens": settings.chunking.overlap_tokens,
        "max_file_bytes": settings.ingest.max_file_bytes,
        "max_text_chars": settings.ingest.max_text_chars,
    }


def decode_chunks(text: str) -> list[ChunkDraft]:
    """The chunks of a result row's `chunks` column, ordinals 0..n-1."""
    return [ChunkDraft(t, loc, i, h) for i, (t, loc, h) in enumerate(json.loads(text))]


def _column(values: list[Any]) -> np.ndarray:
    """An object column: Ray Data stores str as Arrow string and bytes as Arrow binary."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


@dataclass(frozen=True, slots=True)
class _Parsed:
    title: str
    chunks: list[ChunkDraft]
    error: str
    chars: int


class ItemEmbedder:
    """A Ray Data actor: parse, chunk and embed; holds the embedding model between batches."""

    def __init__(self, spec: dict[str, Any]) -> None:
        settings = EmbeddingSettings(
            model=spec["model"],
            device=spec["device"],
            batch_size=spec["batch_size"],
            hashing_dimension=spec["hashing_dimension"],
        )
        # The driver's models cache when this node shares its file system, else a temporary one.
        models_dir = Path(spec["models_dir"]) if spec["models_dir"] else None
        if models_dir is not None and not models_dir.parent.is_dir():
            models_dir = None
        self.embedder = build_embedder(settings, models_dir, spec["precision"])
        self.chunker = Chunker(self.embedder.tokenizer, spec["size_tokens"], spec["overlap_tokens"])
        self.max_file_bytes, self.max_text_chars = int(spec["max_file_bytes"]), int(spec["max_text_chars"])

    def __call__(self, batch: Columns) -> Columns:
        """Result columns for a batch of items (see the module docstring); one embedding call per batch."""
        items = zip(batch["name"], batch["data"], batch["locator"], strict=True)
        parsed = [self._parse(str(name), bytes(data), str(locator)) for name, data, locator in items]
        chunks = [c for p in parsed for c in p.chunks]
        vectors = np.asarray(self.embedder.embed([embed_text(c) for c in chunks]), dtype=np.float32)
        per_doc, start = [], 0
        for p in parsed:
            per_doc.append(np.ascontiguousarray(vectors[start : start + len(p.chunks)]).tobytes())
            start += len(p.chunks)
        return {
            "source": _column([str(s) for s in batch["source"]]),
            "title": _column([p.title for p in parsed]),
            "chunks": _column(
                [json.dumps([[c.text, c.locator, c.content_hash] for c in p.chunks]) for p in parsed]
            ),
            "vectors": _column(per_doc),
            "error": _column([p.error for p in parsed]),
            "chars": np.array([p.chars for p in parsed], dtype=np.int64),
        }

    def _parse(self, name: str, data: bytes, locator: str) -> _Parsed:
        """One item: a file is read by its suffix, a row is its own text."""
        if not name:
            text = data.decode()
            return _Parsed("", self.chunker.chunk([Section(text, locator)]), "", len(text))
        try:
            doc = read_bytes(name, data, self.max_file_bytes, self.max_text_chars)
        except AlmanacError as exc:
            return _Parsed("", [], str(exc), 0)
        chars = sum(len(section.text) for section in doc.sections)
        return _Parsed(doc.title, self.chunker.chunk(doc.sections), "", chars)
