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
