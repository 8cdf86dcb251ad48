"""The two ALMANAC_HOMEs the serving benchmark runs against.

- The corpus home: `almanac ingest` of Python documentation pages (bench/corpus.py), real MiniLM vectors.
  Re-running the same command on an indexed home changes nothing and takes seconds.
- The synthetic home: N chunks for the size sweep, written through the product's own APIs exactly as
  indexer/batch_writer.py does (core.catalog_staging.stage_upsert inside a catalog transaction, the segment
  written and recorded by indexer.segment_writer.SegmentWriter in the same transaction).
  It holds every real chunk of the corpus home (text and MiniLM vector) plus synthetic filler: random unit
  vectors, and texts whose words are drawn from the corpus's own word frequencies and chunk lengths, so BM25
  posting lists are as long as in real text. The collection records the MiniLM model, so the server embeds
  queries with the real model: the sweep measures real query embedding + FAISS + BM25 at that size.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from serve_server import ALMANAC, REPO, server_env

from almanac.core.catalog import Catalog
from almanac.core.catalog_staging import DocumentUpsert, stage_upsert
from almanac.core.index_store import IndexStore
from almanac.core.settings import IndexSettings
from almanac.core.types import ChunkDraft, ChunkRecord
from almanac.indexer.segment_writer import SegmentWriter

COLLECTION = "default"
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"  # what SentenceTransformerEmbedder records
DIMENSION = 384
FILLER_CHUNKS_PER_DOC = 200
_MARKER = "synthetic.json"


def ingest_corpus(home: Path, files: list[Path], log_path: Path) -> dict[str, object]:
    """`almanac ingest --json FILES` into `home` (a no-op re-run when already indexed); the report."""
    command = [str(ALMANAC), "ingest", "--json", *map(str, files)]
    started = time.perf_counter()
    log_path.parent.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no bench/out yet
    with log_path.open("ab") as log:
        done = subprocess.run(command, cwd=REPO, env=server_env(home), stdout=subprocess.PIPE, stderr=log)
    if done.returncode != 0:
        raise RuntimeError(f"`almanac ingest` failed with {done.returncode}; see {log_path}")
    report = json.loads(done.stdout)
    report["wall_s"] = time.perf_counter() - started
    return report


def corpus_chunks(home: Path) -> list[ChunkRecord]:
    """Every chunk of the home's default collection, in id order."""
    catalog = Catalog(f"sqlite:///{(home / 'catalog.db').resolve()}")
    try:
        return list(catalog.iter_chunks(COLLECTION))
    finally:
        catalog.close()


def heading_queries(chunks: list[ChunkRecord]) -> list[str]:
    """Search queries as a reader would type them: the page's module and the section heading
    (``heapq — Heap queue algorithm > Theory`` -> ``heapq Theory``), one per distinct heading path."""
    queries = []
    for locator in dict.fromkeys(c.locator for c in chunks if c.locator):
        parts = [p.strip() for p in locator.split(" > ") if p.strip()]
        module = re.split(r" — |: ", parts[0])[0]
        queries.append(f"{module} {parts[-1]}" if len(parts) > 1 else parts[0])
    return queries


def heading_questions(chunks: list[ChunkRecord], n: int) -> list[str]:
    """`n` questions spread over the corpus's section headings."""
    paths = [p for p in dict.fromkeys(c.locator for c in chunks if " > " in c.locator)]
    picked = [paths[int(i * len(paths) / n)] for i in range(min(n, len(paths)))]
    questions = []
    for locator in picked:
        parts = [p.strip() for p in locator.split(" > ")]
        module = re.split(r" — |: ", parts[0])[0]
        questions.append(f"What does the {module} documentation say about {parts[-1]}?")
    return questions


@dataclass(frozen=True)
class _Doc:
    source: str
    chunks: list[ChunkDraft]
    vectors: np.ndarray


def _draft(text: str, locator: str, ordinal: int) -> ChunkDraft:
    digest = hashlib.sha256(f"{locator}\n{text}".encode()).hexdigest()
    return ChunkDraft(text, locator, ordinal, digest)


def _real_docs(home: Path) -> Iterator[_Doc]:
    """The corpus home's documents with their stored MiniLM vectors."""
    catalog = Catalog(f"sqlite:///{(home / 'catalog.db').resolve()}")
    try:
        row = catalog.require_collection(COLLECTION)
        ids, stored, _ = catalog.chunk_payloads(row.id)
        vectors = {int(i): v for i, v in zip(ids, stored, strict=True)}
        by_doc: dict[str, list[ChunkRecord]] = {}
        for chunk in catalog.iter_chunks(COLLECTION):
            by_doc.setdefault(chunk.source, []).append(chunk)
    finally:
        catalog.close()
    for source, chunks in by_doc.items():
        drafts = [_draft(c.text, c.locator, i) for i, c in enumerate(chunks)]
        yield _Doc(source, drafts, np.stack([vectors[c.id] for c in chunks]))


def _filler_docs(chunks: list[ChunkRecord], total: int, seed: int) -> Iterator[_Doc]:
    """Synthetic documents of FILLER_CHUNKS_PER_DOC chunks: corpus word frequencies and chunk lengths,
    random unit vectors."""
    rng = np.random.default_rng(seed)
    counts = Counter(w for c in chunks for w in c.text.split())
    words = list(counts)
    weights = np.fromiter(counts.values(), dtype=np.float64)
    weights /= weights.sum()
    lengths = np.array([max(1, len(c.text.split())) for c in chunks])
    for doc in range((total + FILLER_CHUNKS_PER_DOC - 1) // FILLER_CHUNKS_PER_DOC):
        n = min(FILLER_CHUNKS_PER_DOC, total - doc * FILLER_CHUNKS_PER_DOC)
        sizes = rng.choice(lengths, n)
        picks = rng.choice(len(words), int(sizes.sum()), p=weights)
        ends = np.cumsum(sizes)
        texts = [" ".join(map(words.__getitem__, picks[e - s : e])) for s, e in zip(sizes, ends, strict=True)]
        drafts = [_draft(t, f"Synthetic page {doc} > Section {i}", i) for i, t in enumerate(texts)]
        vectors = rng.standard_normal((n, DIMENSION), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        yield _Doc(f"synthetic/page{doc:05d}.html", drafts, vectors)


def _commit(catalog: Catalog, writer: SegmentWriter, docs: list[_Doc]) -> None:
    """One transaction, as BatchWriter.flush does it: stage the documents, write their segment and record
    it, commit once."""
    row = writer.collection
    ids: list[int] = []
    with catalog.transaction() as s:
        for doc in docs:
            upsert = DocumentUpsert(
                doc.source,
                "document",
                doc.source,
                doc.chunks[0].content_hash,
                0.0,
                0,
                doc.chunks,
            )
            ids.extend(stage_upsert(s, row.id, upsert, doc.vectors)[0])
        texts = [f"{c.locator}\n{c.text}" for doc in docs for c in doc.chunks]
        vectors = np.concatenate([doc.vectors for doc in docs])
        manifest = writer.stage_commit(s, np.asarray(ids, np.int64), vectors, texts, np.empty(0, np.int64))
    writer.committed(manifest)


def _is_built(home: Path, spec: dict[str, object]) -> bool:
    marker = home / _MARKER
    return marker.is_file() and json.loads(marker.read_text()).get("spec") == spec


def ensure_synthetic_home(
    home: Path, corpus_home: Path, total: int, kind: str = "flat", seed: int = 7
) -> dict[str, object]:
    """A home with `total` chunks (the corpus's real ones + filler) and an index of `kind` (flat, hnsw,
    ivf), built once; reused when the marker matches. A half-built home (no marker) is built again."""
    spec = {"total": total, "kind": kind, "seed": seed, "corpus_home": str(corpus_home.resolve())}
    if _is_built(home, spec):
        return json.loads((home / _MARKER).read_text())
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    started = time.perf_counter()
    catalog = Catalog(f"sqlite:///{(home / 'catalog.db').resolve()}")
    store = IndexStore(home / "index", IndexSettings(kind=kind, use_gpu=False))
    try:
        row = catalog.ensure_collection(COLLECTION, MINILM_NAME, DIMENSION, kind)
        writer = SegmentWriter(catalog, store, row, commit_size=50_000)
        real = list(_real_docs(corpus_home))
        n_real = sum(len(d.chunks) for d in real)
        docs = itertools.chain(real, _filler_docs(corpus_chunks(corpus_home), total - n_real, seed))
        batch: list[_Doc] = []
        for doc in docs:
            batch.append(doc)
            if sum(len(d.chunks) for d in batch) >= 50_000:
                _commit(catalog, writer, batch)
                batch = []
        if batch:
            _commit(catalog, writer, batch)
        writer.compact()  # one segment of the asked kind (IVF trains here), as `almanac compact` does
        chunks = writer.manifest.vector_count
    finally:
        catalog.close()
    built = {
        "spec": spec,
        "chunks": chunks,
        "real_chunks": n_real,
        "build_s": time.perf_counter() - started,
    }
    (home / _MARKER).write_text(json.dumps(built))
    return built
