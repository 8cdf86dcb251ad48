"""The indexing pipeline against a real SQLite catalog and real FAISS, with the hashing embedder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.errors import IndexMismatchError
from almanac.core.index_store import IndexStore
from almanac.core.settings import Settings
from almanac.indexer.consistency import check_collection
from almanac.indexer.pipeline import Indexer
from tests.indexer.corpus import write_corpus


def _store(settings: Settings) -> IndexStore:
    return IndexStore(settings.index_dir, settings.index)


def _state(catalog: Catalog) -> set[tuple[str, int, str, str]]:
    return {(c.source, c.ordinal, c.locator, c.text) for c in catalog.iter_chunks("default")}


def test_ingest_indexes_every_chunk_and_agrees_with_catalog(
    tmp_path: Path, indexer: Indexer, catalog: Catalog, settings: Settings
) -> None:
    write_corpus(tmp_path / "docs", 5)
    report = indexer.ingest_paths([tmp_path / "docs"], "default")
    assert (report.added, report.failed) == (5, [])
    chunks = list(catalog.iter_chunks("default"))
    assert report.chunks_committed == len(chunks) > 5  # several chunks per document
    assert report.version >= 2  # commit_chunks=8 forces several published versions
    assert check_collection(catalog, _store(settings), "default") == []


def test_exact_search_matches_brute_force_over_catalog_vectors(
    tmp_path: Path, indexer: Indexer, catalog: Catalog, settings: Settings
) -> None:
    write_corpus(tmp_path / "docs", 4)
    indexer.ingest_paths([tmp_path / "docs"], "default")
    row = catalog.require_collection("default")
    ids, vectors, _ = catalog.chunk_payloads(row.id)
    query = HashingEmbedder(64).embed(["Topic2 is about subject2"])
    expected = ids[np.argsort(-(vectors @ query[0]), kind="stable")[:5]]
    scores, got = _store(settings).load(catalog, "default").index.search(query, 5)
    assert set(got[0].tolist()) == set(expected.tolist())
    assert np.allclose(np.sort(scores[0]), np.sort((vectors @ query[0])[np.isin(ids, got[0])]), atol=1e-5)


def test_rerun_of_unchanged_files_changes_nothing(tmp_path: Path, indexer: Indexer, catalog: Catalog) -> None:
    write_corpus(tmp_path / "docs", 3)
    first = indexer.ingest_paths([tmp_path / "docs"], "default")
    before = _state(catalog)
    again = indexer.ingest_paths([tmp_path / "docs"], "default")
    assert (again.added, again.updated, again.unchanged, again.chunks_embedded) == (0, 0, 3, 0)
    assert again.version == first.version  # no new index version for no change
    assert _state(catalog) == before


def test_touched_but_identical_file_costs_only_a_hash(tmp_path: Path, indexer: Indexer) -> None:
    paths = write_corpus(tmp_path / "docs", 2)
    indexer.ingest_paths([tmp_path / "docs"], "default")
    os.utime(paths[0], (1, 1))
    report = indexer.ingest_paths([tmp_path / "docs"], "default")
    assert (report.unchanged, report.updated, report.chunks_embedded) == (2, 0, 0)


def test_changed_file_is_replaced_and_unchanged_chunks_reuse_vectors(
    tmp_path: Path, indexer: Indexer, catalog: Catalog, settings: Settings
) -> None:
    paths = write_corpus(tmp_path / "docs", 3)
    indexer.ingest_paths([tmp_path / "docs"], "default")
    paths[1].write_text(paths[1].read_text() + "\n\n## Added\n\nA brand new closing paragraph.\n")
    report = indexer.ingest_paths([tmp_path / "docs"], "default")
    assert (report.updated, report.unchanged) == (1, 2)
    assert report.chunks_reused > 0 and report.chunks_embedded < report.chunks_committed
    texts = [c.text for c in catalog.iter_chunks("default") if c.source == str(paths[1].resolve())]
    assert any("brand new closing paragraph" in t for t in texts)
    assert check_collection(catalog, _store(settings), "default") == []


def test_prune_removes_documents_whose_files_are_gone(
    tmp_path: Path, indexer: Indexer, catalog: Catalog, settings: Settings
) -> None:
    paths = write_corpus(tmp_path / "docs", 3)
    indexer.ingest_paths([tmp_path / "docs"], "default")
    paths[0].unlink()
    kept = indexer.ingest_paths([tmp_path / "docs"], "default")
    assert kept.removed == 0 and str(paths[0].resolve()) in {c.source for c in catalog.iter_chunks("default")}
    pruned = indexer.ingest_paths([tmp_path / "docs"], "default", prune=True)
    assert pruned.removed == 1
    assert str(paths[0].resolve()) not in {c.source for c in catalog.iter_chunks("default")}
    assert check_collection(catalog, _store(settings), "default") == []


def test_delete_by_path_and_unknown_source(tmp_path: Path, indexer: Indexer, catalog: Catalog) -> None:
    paths = write_corpus(tmp_path / "docs", 2)
    indexer.ingest_paths([tmp_path / "docs"], "default")
    report = indexer.delete([str(paths[0]), "nope.md"], "default")
    assert report.removed == 1 and report.failed[0][0] == "nope.md"
    assert {c.source for c in catalog.iter_chunks("default")} == {str(paths[1].resolve())}


def test_bad_files_are_reported_and_the_rest_is_indexed(
    tmp_path: Path, indexer: Indexer, catalog: Catalog
) -> None:
    write_corpus(tmp_path / "docs", 2)
    (tmp_path / "docs" / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    (tmp_path / "docs" / "image.png").write_bytes(b"\x89PNG")
    report = indexer.ingest_paths([tmp_path / "docs", tmp_path / "missing"], "default")
    failed = {Path(s).name: reason for s, reason in report.failed}
    assert set(failed) == {"broken.pdf", "missing"}
    assert report.unsupported[".png"] == 1
    assert report.added == 2 and not report.ok
    assert len({c.source for c in catalog.iter_chunks("default")}) == 2


def test_other_embedding_model_is_a_clear_error(
    tmp_path: Path, settings: Settings, catalog: Catalog, indexer: Indexer
) -> None:
    write_corpus(tmp_path / "docs", 1)
    indexer.ingest_paths([tmp_path / "docs"], "default")
    other = Indexer(settings, catalog, HashingEmbedder(32))
    with pytest.raises(IndexMismatchError, match=r"hashing-64.*ALMANAC_EMBEDDING__MODEL"):
        other.ingest_paths([tmp_path / "docs"], "default")


def test_altered_segment_file_is_never_used_and_compact_repairs_it(
    tmp_path: Path, indexer: Indexer, catalog: Catalog, settings: Settings
) -> None:
    write_corpus(tmp_path / "docs", 3)
    indexer.ingest_paths([tmp_path / "docs"], "default")
    path = next((settings.index_dir / "default").glob("s*.npz"))
    path.write_bytes(path.read_bytes()[:-100] + b"x" * 100)
    snapshot = _store(settings).load(catalog, "default")
    assert snapshot.rebuilt
    assert set(snapshot.index.ids().tolist()) == set(
        catalog.chunk_ids(catalog.require_collection("default").id)
    )
    assert check_collection(catalog, _store(settings), "default") != []
    # Compaction rewrites every segment from the catalog; readers then load it without a rebuild.
    indexer.compact("default")
    assert not _store(settings).load(catalog, "default").rebuilt
    assert check_collection(catalog, _store(settings), "default") == []


def test_rows_are_indexed_updated_and_removed(
    tmp_path: Path, indexer: Indexer, catalog: Catalog, settings: Settings
) -> None:
    import sqlite3

    from almanac.core.source_db import SourceDatabase

    db_path = tmp_path / "shop.db"
    with sqlite3.connect(db_path) as con:
        con.execute("CREATE TABLE cars (id INTEGER PRIMARY KEY, name TEXT, horsepower INTEGER)")
        con.executemany(
            "INSERT INTO cars VALUES (?, ?, ?)", [(1, "Alpha", 90), (2, "Beta", 120), (3, "Gamma", 300)]
        )
    db = SourceDatabase("shop", f"sqlite:///{db_path}")
    first = indexer.ingest_tables(db, ["cars"], "default")
    assert (first.added, first.failed) == (3, [])
    with sqlite3.connect(db_path) as con:
        con.execute("UPDATE cars SET horsepower = 95 WHERE id = 1")
        con.execute("DELETE FROM cars WHERE id = 3")
    second = indexer.ingest_tables(db, ["cars", "nope"], "default")
    assert (second.updated, second.unchanged, second.removed) == (1, 1, 1)
    assert "nope" in second.failed[0][0]
    rows = {c.source: c.text for c in catalog.iter_chunks("default")}
    assert len(rows) == 2 and any("95" in text and "Alpha" in text for text in rows.values())
    assert all(c.kind == "row" for c in catalog.iter_chunks("default"))
    assert check_collection(catalog, _store(settings), "default") == []
    db.close()
