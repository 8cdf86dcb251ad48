"""Embedders: the deterministic hashing fake and the lazily loaded sentence-transformers model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from almanac.core.embedder import (
    HashingEmbedder,
    SentenceTransformerEmbedder,
    embedded_minilm_path,
    folder_dimension,
)
from almanac.core.errors import ConfigError


def test_hashing_vectors_are_deterministic_unit_and_topical() -> None:
    e = HashingEmbedder(128)
    v = e.embed(["red racing bicycle", "red racing bicycle", "a red bicycle for racing", "tax law in 1850"])
    assert v.shape == (4, 128) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(v[0], v[1])
    assert v[0] @ v[2] > v[0] @ v[3]  # shared words pull vectors together
    assert np.array_equal(HashingEmbedder(128).embed(["red racing bicycle"])[0], v[0])


def test_hashing_tokenizer_spans_cover_words() -> None:
    text = "os.path.join(a, b) joins"
    spans = HashingEmbedder().tokenizer.offsets(text)
    assert [text[a:b] for a, b in spans][:5] == ["os", ".", "path", ".", "join"]


def test_dimension_is_read_from_the_folder_without_loading_the_model() -> None:
    embedder = SentenceTransformerEmbedder()
    assert embedder.dimension == 384 == folder_dimension(embedded_minilm_path())
    assert embedder._model is None  # a no-change ingest never pays for loading the model


def test_dense_layer_sets_the_declared_dimension(tmp_path: Path) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "config.json").write_text("{}")
    for folder, config in (
        ("1_Pooling", {"word_embedding_dimension": 768}),
        ("2_Dense", {"out_features": 256}),
    ):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.json").write_text(json.dumps(config))
    assert folder_dimension(tmp_path) == 256
    assert folder_dimension(tmp_path / "missing") is None


def test_a_model_that_is_not_installed_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ALMANAC_EMBEDDING__MODEL"):
        SentenceTransformerEmbedder(str(tmp_path / "no-such-model"))


class Int8Hashing(HashingEmbedder):
    """A fake embedder that says its vectors are int8 (the hashing embedder itself is always fp32)."""

    precision = "int8"


def test_collection_records_the_precision_and_refuses_another(tmp_path: Path) -> None:
    from almanac.core.catalog import Catalog
    from almanac.core.errors import IndexMismatchError
    from almanac.core.settings import Settings
    from almanac.indexer.pipeline import Indexer

    settings = Settings(home=tmp_path / "home", embedding={"model": "hashing", "hashing_dimension": 64})
    settings.home.mkdir()
    (tmp_path / "doc.md").write_text("# Ferries\nThe ferry leaves at 7:40 every weekday.\n")
    catalog = Catalog(settings.catalog_url)
    try:
        report = Indexer(settings, catalog, Int8Hashing(64)).ingest_paths([tmp_path / "doc.md"], "docs")
        assert report.chunks_committed >= 1
        assert catalog.require_collection("docs").precision == "int8"
        with pytest.raises(IndexMismatchError, match="ALMANAC_EMBEDDING__PRECISION=int8"):
            Indexer(settings, catalog, HashingEmbedder(64)).ingest_paths([tmp_path / "doc.md"], "docs")
        Indexer(settings, catalog, HashingEmbedder(64)).ingest_paths([tmp_path / "doc.md"], "fp32-docs")
        assert catalog.require_collection("fp32-docs").precision == "fp32"
    finally:
        catalog.close()


def test_queries_must_match_the_collection_precision() -> None:
    from almanac.core.errors import IndexMismatchError
    from almanac.core.precision import require_precision

    require_precision("docs", "fp32", HashingEmbedder().precision)
    with pytest.raises(IndexMismatchError, match="PRECISION=fp32"):
        require_precision("docs", "fp32", Int8Hashing().precision)


def test_torch_embedder_reports_its_precision() -> None:
    assert SentenceTransformerEmbedder(device="cpu").precision == "fp32"
    assert SentenceTransformerEmbedder(device="cpu", precision="fp16").precision == "fp16"
    with pytest.raises(ConfigError, match="fp32 or fp16"):
        SentenceTransformerEmbedder(device="cpu", precision="int8")


def test_auto_serves_each_collection_in_its_own_precision(tmp_path: Path) -> None:
    from almanac.core.errors import IndexMismatchError
    from almanac.core.precision_embedders import PrecisionEmbedders
    from almanac.core.settings import EmbeddingSettings

    int8 = Int8Hashing(64)
    auto = PrecisionEmbedders(EmbeddingSettings(device="cpu"), tmp_path, int8)
    assert auto.for_collection("new", "int8") is int8
    older = auto.for_collection("older", "fp32")  # built before int8 was the CPU default
    assert isinstance(older, SentenceTransformerEmbedder) and older.precision == "fp32"
    assert auto.for_collection("older-too", "fp32") is older  # built once
    pinned = PrecisionEmbedders(EmbeddingSettings(device="cpu", precision="int8"), tmp_path, int8)
    with pytest.raises(IndexMismatchError, match="PRECISION=fp32"):
        pinned.for_collection("older", "fp32")
