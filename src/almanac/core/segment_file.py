"""The segment file: one .npz (no pickle) holding a segment's FAISS index, its BM25 arrays and a meta.

The meta is JSON (format version, index kind, dimension, vector count), checked against the contents on
read. Zip timestamps are fixed, so the same segment always gives the same bytes and the same sha256, which
the catalog records. The FAISS index is one of three kinds, told apart by `index_kind`: ``flat``
(IndexIDMap2 over IndexFlatIP), ``hnsw`` (IndexIDMap2 over IndexHNSWFlat) or ``ivf`` (IndexIVFFlat).

    >>> import tempfile
    >>> flat = faiss.index_factory(2, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "segment.npz"
    ...     digest = write_segment_file(path, SegmentFile(flat, {"lexical_ids": np.empty(0, np.int64)}))
    ...     stored = read_segment_file(path, expected_sha256=digest)
    >>> index_kind(stored.index), stored.index.d, len(digest)
    ('flat', 2, 64)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from almanac.core.errors import IndexMismatchError

FORMAT = 2  # 1 was a whole-collection index file with tombstones
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same segment always gives the same bytes
_RESERVED = ("index", "meta")


@dataclass(frozen=True)
class SegmentFile:
    """What a segment file holds: the CPU FAISS index and the lexical index's arrays (`lexical_*`)."""

    index: faiss.Index
    lexical: dict[str, np.ndarray]


def stale_index(problem: str) -> IndexMismatchError:
    """The error for a segment file (or index) that no longer fits: the fix is always a rebuild."""
    return IndexMismatchError(f"{problem}; the index is a derived cache: rebuild it from the catalog")


def index_kind(index: faiss.Index) -> str:
    """``"flat"``, ``"hnsw"`` or ``"ivf"``; any other FAISS index is an IndexMismatchError."""
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf"
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else None
    if isinstance(inner, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(inner, faiss.IndexFlat):
        return "flat"
    raise stale_index(f"unexpected FAISS index type {type(index).__name__}")


def write_segment_file(path: Path, contents: SegmentFile) -> str:
    """Write `contents` to exactly `path` (the caller renames it into place), fsync, return the sha256."""
    data = _encode(contents)
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return hashlib.sha256(data).hexdigest()


def read_segment_file(path: Path, expected_sha256: str | None = None) -> SegmentFile:
    """Read a file written by `write_segment_file`; a missing, corrupt or mismatching file (sha256 differs
    from `expected_sha256`, meta disagrees with the contents) is an IndexMismatchError."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise stale_index(f"cannot read segment file {path} ({exc})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise stale_index(f"segment file {path} has sha256 {digest}, the catalog records {expected_sha256}")
    return _decode(data, path)


def _meta(index: faiss.Index) -> dict[str, object]:
    return {
        "format": FORMAT,
        "kind": index_kind(index),
        "dimension": int(index.d),
        "count": int(index.ntotal),
    }


def _encode(contents: SegmentFile) -> bytes:
    if any(name in _RESERVED for name in contents.lexical):
        raise ValueError(f"lexical arrays may not be named {_RESERVED}")
    arrays = {
        "index": faiss.serialize_index(contents.index),
        "meta": np.frombuffer(json.dumps(_meta(contents.index)).encode(), dtype=np.uint8),
        **contents.lexical,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{name}.npy", _EPOCH), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _decode(data: bytes, path: Path) -> SegmentFile:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes())
        index = faiss.deserialize_index(arrays.pop("index"))
        expected = _meta(index)
    except (OSError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile) as exc:
        raise stale_index(f"segment file {path} is unreadable ({exc})") from exc
    lexical_ids = arrays.get("lexical_ids")
    if meta != expected or lexical_ids is None or len(lexical_ids) != index.ntotal:
        raise stale_index(f"segment file {path} has inconsistent meta {meta}")
    return SegmentFile(index, arrays)
