"""The ONNX Runtime embedder against the sentence-transformers fp32 model, and its models cache.

The real MiniLM is exported once per test session (a few seconds) into a session-scoped folder; the tests
that break the cache work on a copy of it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from almanac.core import onnx_export
from almanac.core.embedder import (
    HashingEmbedder,
    SentenceTransformerEmbedder,
    build_embedder,
    embedded_minilm_path,
)
from almanac.core.errors import ConfigError
from almanac.core.onnx_encoder import OnnxEmbedder
from almanac.core.onnx_export import ensure_onnx_file, onnx_exportable
from almanac.core.precision import resolve_precision
from almanac.core.settings import EmbeddingSettings

SENTENCES = [
    "os.path.basename returns the final component of a pathname.",
    "json.dumps serializes an object to a JSON formatted string.",
    "The bicycle shop opens at nine on Saturdays and closes at five.",
    "Raise ValueError when the argument has the right type but an inappropriate value.",
    "A short one.",
    # long enough to be truncated at max_seq_length (256 tokens): the padded batch holds both extremes
    " ".join(["heapq.heapify transforms the list into a heap, in place, in linear time."] * 30),
]
PASSAGES = [
    "os.path.basename(path): return the base name of pathname path.",
    "json.dumps(obj): serialize obj to a JSON formatted str.",
    "Our stores open at 9:00 on Saturday and close at 17:00.",
    "exception ValueError: raised when an operation receives an argument of the right type but an "
    "inappropriate value.",
    "math.sqrt(x): return the square root of x.",
]
QUERIES = [
    "Which function gives the last part of a file path?",
    "How do I turn a Python object into JSON text?",
    "When is the shop open on the weekend?",
    "What error is raised for a bad argument value?",
    "How can I compute a square root?",
]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def int8(models_dir: Path) -> OnnxEmbedder:
    embedder = build_embedder(EmbeddingSettings(precision="int8"), models_dir)
    assert isinstance(embedder, OnnxEmbedder)
    embedder.embed(["export once"])
    return embedder


@pytest.fixture(scope="session")
def fp32() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(device="cpu", precision="fp32")


def test_int8_vectors_are_unit_and_close_to_fp32(
    int8: OnnxEmbedder, fp32: SentenceTransformerEmbedder
) -> None:
    got, want = int8.embed(SENTENCES), fp32.embed(SENTENCES)
    assert got.shape == (len(SENTENCES), 384) == want.shape and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # Measured: cosine to fp32 min 0.983, mean 0.993 over 820 documentation chunks (bench/encoder_precision)
    assert np.sum(got * want, axis=1).min() >= 0.97
    assert int8.precision == "int8" and int8.embed([]).shape == (0, 384)


def test_int8_keeps_the_nearest_neighbour_order(
    int8: OnnxEmbedder, fp32: SentenceTransformerEmbedder
) -> None:
    for embedder in (fp32, int8):
        scores = embedder.embed(QUERIES) @ embedder.embed(PASSAGES).T
        assert scores.argmax(axis=1).tolist() == list(range(len(QUERIES))), type(embedder).__name__
    ranks_fp32 = np.argsort(-(fp32.embed(QUERIES) @ fp32.embed(PASSAGES).T), axis=1)
    ranks_int8 = np.argsort(-(int8.embed(QUERIES) @ int8.embed(PASSAGES).T), axis=1)
    assert (ranks_fp32[:, :2] == ranks_int8[:, :2]).all()


def test_fp32_export_matches_sentence_transformers_on_padded_batches(
    models_dir: Path, fp32: SentenceTransformerEmbedder
) -> None:
    path = ensure_onnx_file(embedded_minilm_path(), "fp32", models_dir)
    onnx32 = OnnxEmbedder(embedded_minilm_path(), "minilm", 384, models_dir, "fp32", batch_size=4)
    assert onnx32._open()[0] is not None and path.is_file()
    cosine = np.sum(onnx32.embed(SENTENCES) * fp32.embed(SENTENCES), axis=1)
    assert cosine.min() > 0.9999  # a mask frozen by tracing gave cosines far below this for padded rows


def test_tokenizer_spans_match_the_sentence_transformers_tokenizer(
    int8: OnnxEmbedder, fp32: SentenceTransformerEmbedder
) -> None:
    text = "os.path.join(a, b) — naïve café, 1850s!"
    assert int8.tokenizer.offsets(text) == fp32.tokenizer.offsets(text)


def test_a_later_start_reuses_the_cached_export(
    int8: OnnxEmbedder, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ensure_onnx_file(embedded_minilm_path(), "int8", models_dir)
    before = path.stat().st_mtime_ns

    def no_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export, "_build", no_export)
    again = build_embedder(EmbeddingSettings(precision="int8"), models_dir)
    assert np.allclose(again.embed(SENTENCES[:2]), int8.embed(SENTENCES[:2]), atol=1e-6)
    assert path.stat().st_mtime_ns == before


def test_a_truncated_or_stale_cache_is_rebuilt(
    int8: OnnxEmbedder, models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = ensure_onnx_file(embedded_minilm_path(), "int8", models_dir).parent
    copy = tmp_path / "models" / "onnx" / cached.name
    shutil.copytree(cached, copy)
    stale = copy.parent / f".{copy.name}.tmp-killed"
    stale.mkdir()  # what a killed export leaves
    data = (copy / "model.onnx").read_bytes()
    (copy / "model.onnx").write_bytes(data[: len(data) // 2])
    exports: list[str] = []

    def export_by_copy(folder: Path, precision: str, onnx_file: Path) -> None:
        exports.append(precision)  # the real export ran for the session fixture; the rest runs for real
        shutil.copyfile(cached / "model.onnx", onnx_file)

    monkeypatch.setattr(onnx_export, "_export", export_by_copy)
    rebuilt = ensure_onnx_file(embedded_minilm_path(), "int8", tmp_path / "models")
    manifest = json.loads((copy / "manifest.json").read_text())
    assert exports == ["int8"] and rebuilt == copy / "model.onnx"
    assert rebuilt.stat().st_size == manifest["bytes"] == len(data) and not stale.exists()
    assert onnx_export.file_sha256(rebuilt) == manifest["sha256"]
    ensure_onnx_file(embedded_minilm_path(), "int8", tmp_path / "models")
    assert exports == ["int8"]  # valid now: not rebuilt again
    fresh = OnnxEmbedder(embedded_minilm_path(), "minilm", 384, tmp_path / "models", "int8")
    assert np.allclose(fresh.embed(SENTENCES[:2]), int8.embed(SENTENCES[:2]), atol=1e-6)


def test_precision_setting_picks_the_encoder(models_dir: Path, tmp_path: Path) -> None:
    assert isinstance(
        build_embedder(EmbeddingSettings(precision="fp32"), models_dir), SentenceTransformerEmbedder
    )
    auto = build_embedder(EmbeddingSettings(device="cpu"), models_dir)
    assert auto.precision == resolve_precision("auto", "cpu", exportable=True)
    assert build_embedder(EmbeddingSettings(model="hashing", precision="int8")).precision == "fp32"
    assert HashingEmbedder().precision == "fp32"
    assert resolve_precision("auto", "cuda:0", exportable=True) == "fp16"
    # a model the export does not cover: auto falls back to fp32, int8 is refused with what to do
    shutil.copytree(embedded_minilm_path(), tmp_path / "cls")
    (tmp_path / "cls" / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": True})
    )
    assert not onnx_exportable(tmp_path / "cls") and onnx_exportable(embedded_minilm_path())
    settings = EmbeddingSettings(model=str(tmp_path / "cls"), device="cpu")
    assert build_embedder(settings, models_dir).precision == "fp32"
    with pytest.raises(ConfigError, match="PRECISION=fp32"):
        build_embedder(settings.model_copy(update={"precision": "int8"}), models_dir)
