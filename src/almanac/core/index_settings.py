"""The index's settings (ALMANAC_INDEX__*): which FAISS kind, segment merging, and ANN tuning."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class IndexSettings(BaseModel):
    """FAISS index per collection."""

    kind: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        "auto",
        description="index of new collections: 'auto' searches exactly while a segment is under "
        "ann_min_vectors and builds IVF clusters past it; 'flat' always exact; 'hnsw' (graph) and 'ivf' "
        "(clusters) approximate but faster on large collections",
    )
    ann_min_vectors: int = Field(
        125_000,
        ge=1,
        description="vectors from which 'auto' builds a segment as IVF: where an exact search of one query "
        "passes 30 ms p99 on 2 cores (bench/scale.py --threshold: 24 ms at 100k, 39 ms at 150k)",
    )
    merge_factor: int = Field(
        10,
        ge=2,
        le=100,
        description="segments of one size tier merged into one (more: fewer merges, more segments to search)",
    )
    single_segment_below: int = Field(
        10_000,
        ge=0,
        description="vectors under which a collection is kept as one segment (rewritten at the end of each "
        "ingest): BM25 length statistics are then exactly those of one index; 0: never",
    )
    merge_in_background: bool = Field(
        True,
        description="merge segments on a writer thread while ingestion goes on; false merges after each "
        "commit, in line",
    )
    merge_deleted_ratio: float = Field(
        0.2,
        gt=0,
        le=1,
        description="share of deleted vectors after which a segment is rewritten without them",
    )
    hnsw_m: int = Field(
        32, ge=4, le=256, description="HNSW links per vector: more recall, memory, build time"
    )
    hnsw_ef_search: int = Field(
        128,
        ge=8,
        le=4096,
        description="HNSW candidates explored per search: raise for recall, lower for speed",
    )
    ivf_nlist: int = Field(
        1024, ge=1, description="most IVF clusters; fewer are trained while vectors are under 39 per cluster"
    )
    ivf_nprobe: int = Field(
        16,
        ge=1,
        description="fewest IVF clusters searched per query; each IVF segment probes more when its build "
        "measured that ann_target_recall needs more",
    )
    ann_target_recall: float = Field(
        0.95,
        gt=0,
        le=1,
        description="recall@10 against exact search an IVF segment must reach: its number of probed "
        "clusters is calibrated for it when the segment is built",
    )
    use_gpu: bool | None = Field(
        None, description="search flat and IVF indexes on a GPU: None when FAISS sees one, true requires one"
    )
