"""Embedding precision: which one an embedder runs in, and whether a collection's vectors match it.

Vectors of different precisions never mix in one index: a collection records the precision it was built
with (the catalog checks it on ingest), and queries over it must be embedded the same way, since an int8
query against fp32 chunks (or the reverse) ranks differently from either alone.

    >>> resolve_precision("auto", "cpu", exportable=True), resolve_precision("auto", "cuda", exportable=True)
    ('int8', 'fp16')
    >>> resolve_precision("auto", "cpu", exportable=False)
    'fp32'
"""

from __future__ import annotations

from almanac.core.errors import ConfigError, IndexMismatchError

# Chosen by bench/encoder_precision.py: ONNX Runtime int8 (per-channel) on the embedded MiniLM gave about 2x
# the fp32 throughput on a 2-core AVX2 CPU and kept answer-recall@5 within 1 point of fp32.
CPU_DEFAULT = "int8"
PRECISIONS = ("fp32", "fp16", "int8")


def resolve_precision(wanted: str, device: str, exportable: bool) -> str:
    """The precision an embedder runs in: `wanted` as given, or for 'auto' fp16 on CUDA and the measured CPU
    default elsewhere (fp32 for a model the ONNX export does not support). int8 needs that export."""
    if wanted == "auto":
        if device.startswith("cuda"):
            return "fp16"
        return CPU_DEFAULT if exportable else "fp32"
    if wanted not in PRECISIONS:
        raise ConfigError(f"unknown embedding precision {wanted!r}; use auto, {', '.join(PRECISIONS)}")
    if wanted == "int8" and not exportable:
        raise ConfigError(
            "int8 embeddings need a sentence-transformers BERT model with mean pooling (the ONNX export); "
            "set ALMANAC_EMBEDDING__PRECISION=fp32 for this model"
        )
    return wanted


def require_precision(collection: str, stored: str, running: str) -> None:
    """Raise IndexMismatchError unless queries embedded in `running` precision may search `collection`,
    whose vectors are `stored` precision.

    >>> require_precision("docs", "int8", "int8")
    >>> require_precision("docs", "fp32", "int8")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    almanac.core.errors.IndexMismatchError: collection 'docs' holds fp32 vectors but ... in int8; ...
    """
    if stored != running:
        raise IndexMismatchError(
            f"collection {collection!r} holds {stored} vectors but queries are embedded in {running}; "
            f"set ALMANAC_EMBEDDING__PRECISION={stored}, or re-ingest the collection into a new one"
        )
