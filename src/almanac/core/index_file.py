"""The vector index file: one .npz (no pickle) holding a serialized FAISS index, its tombstones and a meta.

The meta is JSON (format version, index kind, dimension), checked against the index on read. Zip timestamps
are fixed, so the same index always gives the same bytes and the same sha256, which the catalog records.
A file holds one of three kinds of index, told apart by `index_kind`: ``flat`` (IndexIDMap2 over
IndexFlatIP), ``hnsw`` (IndexIDMap2 over IndexHNSWFlat) or ``ivf`` (IndexIVFFlat).

    >>> import tempfile
    >>> flat = faiss.index_factory(2, "IDMap2,Flat", faiss.METRIC_INNER_PRODUCT)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "index.npz"
    ...     digest = write_index_file(path, IndexFile(flat, np.empty(0, np.int64)))
    ...     stored = read_index_file(path, expected_sha256=digest)
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

FORMAT = 1
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same index always gives the same bytes


@dataclass(frozen=True)
class IndexFile:
    """What an index file holds: the CPU FAISS index and the ids tombstoned in it."""

    index: faiss.Index
    tombstones: np.ndarray


def stale_index(problem: str) -> IndexMismatchError:
    """The error for an index file (or index) that no longer fits: the fix is always a rebuild."""
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


def write_index_file(path: Path, contents: IndexFile) -> str:
    """Write `contents` to exactly `path` (the caller renames it into place), fsync, return the sha256."""
    data = _encode(contents)
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return hashlib.sha256(data).hexdigest()


def read_index_file(path: Path, expected_sha256: str | None = None) -> IndexFile:
    """Read a file written by `write_index_file`; a missing, corrupt or mismatching file (sha256 differs
    from `expected_sha256`, meta disagrees with the index) is an IndexMismatchError."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise stale_index(f"cannot read index file {path} ({exc})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise stale_index(f"index file {path} has sha256 {digest}, the catalog records {expected_sha256}")
    return _decode(data, path)


def _encode(contents: IndexFile) -> bytes:
    kind, dimension = index_kind(contents.index), int(contents.index.d)
    meta = json.dumps({"format": FORMAT, "kind": kind, "dimension": dimension})
    arrays = {
        "index": faiss.serialize_index(contents.index),
        "tombstones": contents.tombstones,
        "meta": np.frombuffer(meta.encode(), dtype=np.uint8),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{name}.npy", _EPOCH), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _decode(data: bytes, path: Path) -> IndexFile:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            meta = json.loads(archive["meta"].tobytes())
            raw, tombstones = archive["index"], archive["tombstones"]
        index = faiss.deserialize_index(raw)
    except (OSError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile) as exc:
        raise stale_index(f"index file {path} is unreadable ({exc})") from exc
    expected = {"format": FORMAT, "dimension": index.d, "kind": index_kind(index)}
    if not isinstance(meta, dict) or any(meta.get(key) != value for key, value in expected.items()):
        raise stale_index(f"index file {path} has inconsistent meta {meta}")
    return IndexFile(index, tombstones)
