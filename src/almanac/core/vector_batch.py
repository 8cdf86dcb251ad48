"""A vector batch: int64 ids and float32 vectors as a segment index is built from them, checked before use.

Bad input is the caller's to fix (InputError); vectors of another dimension mean the embedding model changed
since the index was built, so the index must be rebuilt (IndexMismatchError):

    >>> check_ids(np.array([3, 1])).dtype
    dtype('int64')
    >>> check_vectors(np.zeros((2, 4), dtype=np.float32), dimension=4).shape
    (2, 4)
"""

from __future__ import annotations

import numpy as np

from almanac.core.errors import InputError
from almanac.core.segment_file import stale_index


def check_ids(ids: np.ndarray) -> np.ndarray:
    """`ids` as a contiguous 1-D int64 array; non-integer, multi-dimensional or negative ids are refused."""
    arr = np.asarray(ids)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"ids must be a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and arr.min() < 0:
        raise InputError("ids must be >= 0 (-1 marks an empty result slot)")
    return arr


def check_vectors(vectors: np.ndarray, dimension: int) -> np.ndarray:
    """`vectors` as a contiguous (n, dimension) float32 array of finite values."""
    arr = np.asarray(vectors)
    if arr.dtype != np.float32:
        raise InputError(f"vectors must be float32, got {arr.dtype}; convert with .astype(np.float32)")
    if arr.ndim != 2:
        raise InputError(f"vectors must have shape (n, {dimension}), got {arr.shape}; use v[None, :] for one")
    if arr.shape[1] != dimension:
        raise stale_index(
            f"vectors have dimension {arr.shape[1]} but the index has {dimension} (model changed?)"
        )
    if not np.isfinite(arr).all():
        raise InputError("vectors contain NaN or infinity; check the embedder output")
    return np.ascontiguousarray(arr)
