"""The ONNX Runtime embedder: the exported sentence pipeline (core/onnx_export.py) run on CPU.

Same vectors as sentence-transformers up to the precision: the model's own fast tokenizer (tokenizer.json),
truncation at the folder's max_seq_length, mean pooling and L2 normalisation inside the graph. Texts are
sorted by token count and batched, so a batch pads to its longest text only. ``int8`` runs the linear layers
in int8 (about 2x the fp32 throughput on a 2-core AVX2 CPU; bench/encoder_precision.py measures it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from almanac.core.errors import ConfigError
from almanac.core.onnx_export import ensure_onnx_file

log = logging.getLogger(__name__)


class FastTokenizer:
    """Word-piece spans from a `tokenizers.Tokenizer` (the chunker's Tokenizer port), loaded on first use."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._tokenizer: Any = None

    def _load(self) -> Any:
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(self._path))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            self._tokenizer = tokenizer
        return self._tokenizer

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word pieces, without special tokens."""
        return [tuple(span) for span in self._load().encode(text, add_special_tokens=False).offsets]


def max_seq_length(folder: Path, default: int = 512) -> int:
    """The folder's sentence-transformers max_seq_length (what sentence-transformers truncates to)."""
    try:
        return int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return default


class OnnxEmbedder:
    """A sentence-transformers folder exported to ONNX (fp32 or int8) and run by ONNX Runtime on CPU.

    The export (first start only) and the session are made on first use, like the torch embedder's model.
    `onnx_file` runs a given graph of the same signature instead of the cached export (benchmark variants).
    """

    def __init__(
        self,
        folder: Path,
        model_name: str,
        dimension: int,
        models_dir: Path,
        precision: str = "int8",
        batch_size: int = 64,
        onnx_file: Path | None = None,
    ) -> None:
        self._folder, self._models_dir, self._onnx_file = folder, models_dir, onnx_file
        self.model_name, self.dimension, self.precision = model_name, dimension, precision
        self.batch_size = batch_size
        self._tokenizer = FastTokenizer(folder / "tokenizer.json")
        self._session: Any = None
        self._encoder: Any = None
        self._lock = threading.Lock()

    @property
    def tokenizer(self) -> FastTokenizer:
        """The model's own word-piece tokenizer."""
        return self._tokenizer

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                self._session, self._encoder = self._open()
            return self._session, self._encoder

    def _open(self) -> tuple[Any, Any]:
        import onnxruntime  # type: ignore[import-untyped]
        from tokenizers import Tokenizer

        path = self._onnx_file or ensure_onnx_file(self._folder, self.precision, self._models_dir)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads sleep instead of spinning: on a shared 2-core machine spinning steals the cores
        # the chat model and other processes need, and was no faster here (1.77x fp32 against 1.68x, median).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # ONNX Runtime sizes its pool to every core and ignores OMP_NUM_THREADS; honour it, so that a process
        # given a share of the cores (Ray sets OMP_NUM_THREADS=1 in a 1-CPU actor) does not oversubscribe.
        options.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        try:
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigError(
                f"cannot load the ONNX encoder {path} ({exc}); delete it to export again"
            ) from exc
        encoder = Tokenizer.from_file(str(self._folder / "tokenizer.json"))
        encoder.enable_truncation(max_seq_length(self._folder))
        encoder.no_padding()  # padded per batch below, to that batch's longest text
        log.info("event=embedder_loaded model=%s runtime=onnx precision=%s", self.model_name, self.precision)
        return session, encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit vector per text, float32; batches of similar length to cut padding."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        session, encoder = self._load()
        ids = [e.ids for e in encoder.encode_batch(list(texts))]
        order = np.argsort([-len(i) for i in ids], kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = session.run(None, padded([ids[r] for r in rows]))[0]
        return out


def padded(batch: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """The graph's inputs for token id lists: zero-padded ids, the mask of real tokens, token types 0.

    >>> {k: v.tolist() for k, v in padded([[101, 7, 102], [101, 102]]).items()}["attention_mask"]
    [[1, 1, 1], [1, 1, 0]]
    """
    width = max(len(ids) for ids in batch)
    input_ids = np.zeros((len(batch), width), dtype=np.int64)
    mask = np.zeros_like(input_ids)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
