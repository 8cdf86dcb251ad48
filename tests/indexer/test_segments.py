"""The segmented index end to end: a commit writes only its change, readers apply deltas, merges and repairs
publish like commits; real SQLite catalog, real FAISS and bm25s, the hashing embedder."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from almanac.core.catalog import Catalog
from almanac.core.catalog_schema import IndexDeletionRow, IndexSegmentRow, IndexVersionRow
from almanac.core.embedder import HashingEmbedder
from almanac.core.index_manifest import read_manifest
from almanac.core.index_store import IndexStore
from almanac.core.settings import RetrievalSettings, Settings
from almanac.indexer.consistency import check_collection
from almanac.indexer.pipeline import Indexer
from almanac.server.retrieval.retriever import Retriever
from tests.indexer.corpus import write_corpus


def _store(settings: Settings) -> IndexStore:
    return IndexStore(settings.index_dir, settings.index)


def _files(settings: Settings) -> dict[str, str]:
    folder = settings.index_dir / "default"
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("s*.npz"))}


def _count(catalog: Catalog, table: type) -> int:
    with catalog.transaction() as s:
        return s.scalar(select(func.count()).select_from(table)) or 0


def _write_doc(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(f"# {name}\n\n{text}\n")
    return path


def test_a_commit_writes_only_its_own_chunks_and_leaves_older_segments_untouched(
    tmp_path: Path, settings: Settings, catalog: Catalog
) -> None:
    settings = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"commit_chunks": 10_000})}
    )
    indexer = Indexer(settings, catalog, HashingEmbedder(64))
    write_corpus(tmp_path / "docs", 4)
    indexer.ingest_paths([tmp_path / "docs"], "default")
    before = _files(settings)
    assert len(before) == 1
    _write_doc(tmp_path / "docs", "extra", "A lighthouse keeper writes down the tides.")
    report = indexer.ingest_paths([tmp_path / "docs"], "default")
    after = _files(settings)
    assert {k: v for k, v in after.items() if k in before} == before  # older files byte for byte
    (new_name,) = after.keys() - before.keys()
    store = _store(settings)
    new = store.load(catalog, "default").index
    segment = next(s for s in new.segments if s.name == new_name)
    assert len(segment.ids) == report.chunks_committed == 1
    assert check_collection(catalog, store, "default") == []


def test_update_and_delete_record_deletions_and_searches_never_return_old_chunks(
    tmp_path: Path, catalog: Catalog, settings: Settings
) -> None:
    keep_deleted = settings.index.model_copy(update={"merge_deleted_ratio": 1.0})  # no rewrite on delete
    settings = settings.model_copy(update={"index": keep_deleted})
    indexer = Indexer(settings, catalog, HashingEmbedder(64))
    path = _write_doc(tmp_path / "docs", "boat", "The granite boat sails at dawn.")
    _write_doc(tmp_path / "docs", "kite", "A paper kite flies over the dunes.")
    indexer.ingest_paths([tmp_path / "docs"], "default")
    old_ids = set(catalog.chunk_ids(catalog.require_collection("default").id).tolist())
    retriever = Retriever(catalog, HashingEmbedder(64), _store(settings), RetrievalSettings())
    assert "granite" in retriever.search("granite boat", "default", 1)[0].text
    path.write_text("# boat\n\nThe copper boat sails at dusk.\n")
    indexer.ingest_paths([tmp_path / "docs"], "default")
    assert _count(catalog, IndexDeletionRow) == 1
    hits = retriever.search("granite boat dawn", "default", 5)
    assert all("granite" not in h.text for h in hits) and any("copper" in h.text for h in hits)
    (tmp_path / "docs" / "kite.md").unlink()
    indexer.ingest_paths([tmp_path / "docs"], "default", prune=True)
    hits = retriever.search("paper kite dunes", "default", 5)
    live = set(catalog.chunk_ids(catalog.require_collection("default").id).tolist())
    assert {h.chunk_id for h in hits} <= live and not live & old_ids  # both original chunks are gone
    assert all("kite" not in h.text for h in hits)
    assert _count(catalog, IndexDeletionRow) == 2
    assert check_collection(catalog, _store(settings), "default") == []


def test_merges_keep_segments_few_absorb_deletions_and_agree_with_the_catalog(
    tmp_path: Path, catalog: Catalog, settings: Settings
) -> None:
    in_line = {"merge_factor": 3, "kind": "flat", "merge_in_background": False}
    settings = settings.model_copy(update={"index": settings.index.model_copy(update=in_line)})
    indexer = Indexer(settings, catalog, HashingEmbedder(64))
    for round_ in range(12):  # 12 small commits, one document each
        _write_doc(tmp_path / "docs", f"doc{round_}", f"Entry {round_} tells of harbour number {round_}.")
        indexer.ingest_paths([tmp_path / "docs"], "default")
    _write_doc(tmp_path / "docs", "doc0", "Entry zero was rewritten entirely.")
    indexer.ingest_paths([tmp_path / "docs"], "default")
    manifest = read_manifest(catalog, catalog.require_collection("default").id)
    assert len(manifest.segments) < 6  # 13 commits, merged in threes
    assert manifest.vector_count == len(catalog.chunk_ids(catalog.require_collection("default").id))
    with catalog.transaction() as s:
        merged = s.scalar(select(func.count()).where(IndexSegmentRow.dropped_version.is_not(None)))
    assert merged and merged > 0
    assert check_collection(catalog, _store(settings), "default") == []
    # The rewritten document's old chunk was in a merged range: its deletion record is gone with it.
    indexer.compact("default")
    assert _count(catalog, IndexDeletionRow) == 0
    assert len(read_manifest(catalog, catalog.require_collection("default").id).segments) == 1


def test_a_reader_applies_a_new_version_as_a_delta(
    tmp_path: Path, indexer: Indexer, catalog: Catalog, settings: Settings
) -> None:
    write_corpus(tmp_path / "docs", 2)
    indexer.ingest_paths([tmp_path / "docs"], "default")
    store = _store(settings)
    first = store.load(catalog, "default")
    _write_doc(tmp_path / "more", "tide", "The tide table lists high water at noon.")
    indexer.ingest_paths([tmp_path / "more"], "default")
    second = store.load(catalog, "default", previous=first)
    assert second.version > first.version and not second.rebuilt
    shared = [s for s in second.index.segments if s.name in first.index.names()]
    assert shared and all(any(s is old for old in first.index.segments) for s in shared)  # not re-read
    assert len(second.index) == len(first.index) + 1
    assert np.array_equal(second.index.ids(), catalog.chunk_ids(catalog.require_collection("default").id))


def test_searches_go_on_while_the_writer_publishes_and_pick_up_new_content(
    tmp_path: Path, indexer: Indexer, catalog: Catalog, settings: Settings
) -> None:
    write_corpus(tmp_path / "docs", 3)
    indexer.ingest_paths([tmp_path / "docs"], "default")
    retriever = Retriever(catalog, HashingEmbedder(64), _store(settings), RetrievalSettings())
    retriever.warm("default")
    errors: list[BaseException] = []
    seen: list[bool] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            try:
                hits = retriever.search("zeppelin hangar", "default", 3)
                seen.append(any("zeppelin" in h.text for h in hits))
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=search) for _ in range(2)]
    for thread in threads:
        thread.start()
    for i in range(4):
        _write_doc(tmp_path / "docs", f"z{i}", f"The zeppelin hangar {i} stands empty.")
        indexer.ingest_paths([tmp_path / "docs"], "default")
    deadline = threading.Event()
    deadline.wait(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert seen and seen[-1] and not seen[0]  # from before the change to after it
    assert retriever.version("default") == read_manifest(catalog, 1).version


def test_a_catalog_of_the_earlier_format_is_repaired_by_the_next_writer(
    tmp_path: Path, indexer: Indexer, catalog: Catalog, settings: Settings
) -> None:
    write_corpus(tmp_path / "docs", 2)
    indexer.ingest_paths([tmp_path / "docs"], "default")
    with catalog.transaction() as s:  # what an earlier release left: version rows, no segments
        s.execute(IndexSegmentRow.__table__.delete())
    store = _store(settings)
    assert store.load(catalog, "default").rebuilt
    assert check_collection(catalog, store, "default") != []
    _write_doc(tmp_path / "docs", "new", "A new page about sextants.")
    indexer.ingest_paths([tmp_path / "docs"], "default")
    assert not store.load(catalog, "default").rebuilt
    assert check_collection(catalog, store, "default") == []


def test_auto_kind_builds_ivf_past_the_threshold_with_high_recall(
    tmp_path: Path, catalog: Catalog, settings: Settings
) -> None:
    index = settings.index.model_copy(update={"kind": "auto", "ann_min_vectors": 300, "ivf_nlist": 8})
    settings = settings.model_copy(update={"index": index})
    indexer = Indexer(settings, catalog, HashingEmbedder(64))
    folder = tmp_path / "docs"
    for i in range(400):
        _write_doc(folder, f"d{i}", f"Record {i}: station {i % 37} measured {i * 7 % 101} millimetres.")
    indexer.ingest_paths([folder], "default")
    small = read_manifest(catalog, 1)
    # commit-sized segments stay exact; once the collection passes 300, merged ones of 30+ are IVF
    assert all(s.kind == "flat" for s in small.segments if s.vector_count < 30)
    assert all(s.kind == "ivf" for s in small.segments if s.vector_count >= 300)
    indexer.compact("default")
    (big,) = read_manifest(catalog, 1).segments
    assert big.kind == "ivf" and big.vector_count >= 400
    ids, vectors, _ = catalog.chunk_payloads(1)
    loaded = _store(settings).load(catalog, "default").index
    queries = vectors[::20]
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    _, found = loaded.search(queries, 10)
    recall = np.mean([len(set(ids[e]) & set(f)) / 10 for e, f in zip(exact, found, strict=True)])
    assert recall >= 0.9


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_compact_publishes_one_segment_of_the_forced_kind(
    tmp_path: Path, catalog: Catalog, settings: Settings, kind: str
) -> None:
    settings = settings.model_copy(update={"index": settings.index.model_copy(update={"kind": kind})})
    indexer = Indexer(settings, catalog, HashingEmbedder(64))
    write_corpus(tmp_path / "docs", 3)
    indexer.ingest_paths([tmp_path / "docs"], "default")
    before = read_manifest(catalog, 1)
    report = indexer.compact("default")
    after = read_manifest(catalog, 1)
    assert report.version == after.version == before.version + 1
    assert [s.kind for s in after.segments] == [kind]
    assert after.vector_count == before.vector_count
    with catalog.transaction() as s:
        assert s.scalar(select(func.max(IndexVersionRow.version))) == after.version
    assert check_collection(catalog, _store(settings), "default") == []


def test_background_merges_while_documents_change_leave_index_and_catalog_in_agreement(
    tmp_path: Path, catalog: Catalog, settings: Settings
) -> None:
    index = settings.index.model_copy(update={"merge_factor": 2, "merge_in_background": True})
    settings = settings.model_copy(
        update={"index": index, "ingest": settings.ingest.model_copy(update={"commit_chunks": 1})}
    )
    indexer = Indexer(settings, catalog, HashingEmbedder(64))
    folder = tmp_path / "docs"
    for i in range(30):
        _write_doc(folder, f"d{i}", f"Logbook entry {i} about the schooner.")
    indexer.ingest_paths([folder], "default")  # 30 commits, merges running beside them
    for i in range(0, 30, 3):  # updates and deletions land while merges read the catalog
        _write_doc(folder, f"d{i}", f"Logbook entry {i} was corrected.")
        (folder / f"d{i + 1}.md").unlink()
    indexer.ingest_paths([folder], "default", prune=True)
    manifest = read_manifest(catalog, 1)
    assert manifest.vector_count == len(catalog.chunk_ids(1)) == 20
    assert len(manifest.segments) <= 3 * 2  # close() merges down to 3 x merge_factor
    with catalog.transaction() as s:
        merged = s.scalar(select(func.count()).where(IndexSegmentRow.dropped_version.is_not(None)))
    assert merged  # some merges published (in the background or at close)
    assert check_collection(catalog, _store(settings), "default") == []


@pytest.mark.parametrize("commit_chunks", [10_000, 8])
def test_lexical_search_over_segments_agrees_with_one_bm25_over_the_whole_collection(
    tmp_path: Path, catalog: Catalog, settings: Settings, commit_chunks: int
) -> None:
    """Parity with the previous design (one BM25 over every chunk's text): the same top hit for every query of
    a fixed set, and the same top-3 set when the collection is one segment."""
    from almanac.core.lexical_index import LexicalIndex

    ingest = settings.ingest.model_copy(update={"commit_chunks": commit_chunks})
    index = settings.index.model_copy(update={"merge_in_background": False})
    settings = settings.model_copy(update={"ingest": ingest, "index": index})
    write_corpus(tmp_path / "docs", 6)
    Indexer(settings, catalog, HashingEmbedder(64)).ingest_paths([tmp_path / "docs"], "default")
    ids, _, texts = catalog.chunk_payloads(1)
    whole = LexicalIndex.build(ids.tolist(), texts)
    served = _store(settings).load(catalog, "default").index
    assert (len(served.segments) == 1) == (commit_chunks == 10_000)
    queries = [f"word{i}_{j}" for i in range(6) for j in (3, 41)] + [f"Topic{i} subject{i}" for i in range(6)]
    queries += ["Details", "Document 4 Details"]
    for query in queries:
        want, got = whole.search(query, 3), served.search_lexical(query, 3)
        assert got and got[0][0] == want[0][0], query
        if len(served.segments) == 1:
            assert {i for i, _ in got} == {i for i, _ in want}, query
