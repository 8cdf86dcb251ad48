"""The ONNX encoder file: a sentence-transformers model exported once for ONNX Runtime, in the models cache.

The graph holds the whole sentence pipeline (BERT encoder, mean pooling over real tokens, L2 normalisation),
so one `InferenceSession.run` gives the final vectors. ``int8`` quantizes the weights of every MatMul and the
word embeddings per output channel (dynamic quantization: activations are quantized on the fly); per-tensor
scales lost too much on AVX2 CPUs (mean cosine to fp32 0.94, against 0.993 per channel).

Layout: ``models_dir/onnx/<model>-<precision>/{model.onnx, manifest.json}``. The manifest, written last,
names the source folder's fingerprint and the file's size and sha256; a folder whose manifest is missing or
disagrees (a killed export, a truncated or altered file, an updated model package) is rebuilt, under a file
lock, in a temporary folder renamed into place when whole. Export plus quantization takes a few seconds, once;
later starts check the sha256 (tens of milliseconds) and load the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from almanac.core.errors import ConfigError

log = logging.getLogger(__name__)

ONNX_PRECISIONS = ("fp32", "int8")
_FORMAT = 1  # bump when the graph changes, so older cache folders are rebuilt
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OUTPUT = "sentence_embedding"


def onnx_exportable(folder: Path) -> bool:
    """True for a sentence-transformers folder this module can export: a BERT-style transformer (its own
    config.json at the top) followed by mean pooling and, optionally, normalisation, nothing else."""
    try:
        modules = json.loads((folder / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if kinds not in (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"]):
            return False
        if modules[0].get("path", "") != "":
            return False
        pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text())
        modes = {k: v for k, v in pooling.items() if k.startswith("pooling_mode")}
        config = json.loads((folder / "config.json").read_text())
        lower = json.loads((folder / "sentence_bert_config.json").read_text()).get("do_lower_case", False)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False
    mean_only = modes.get("pooling_mode_mean_tokens") is True and sum(bool(v) for v in modes.values()) == 1
    # BERT is the only family tested; do_lower_case would need the text lowered before the tokenizer
    return mean_only and not lower and config.get("model_type") == "bert"


def source_fingerprint(folder: Path) -> str:
    """Identifies the source model cheaply (path, size and mtime of each top-level file): a new package
    version changes it, so the cache is rebuilt."""
    parts = [str(folder.resolve()), str(_FORMAT)]
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        stat = path.stat()
        parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_folder(folder: Path, precision: str, models_dir: Path) -> Path:
    """Where the exported file of (model folder, precision) lives in the models cache."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().name).strip("-") or "model"
    if slug == "model":  # the embedded MiniLM's folder is called model/: name it after its package
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.resolve().parent.name).strip("-") or "model"
    return models_dir / "onnx" / f"{slug}-{precision}"


def is_valid(target: Path, fingerprint: str, precision: str) -> bool:
    """Whether `target` holds a whole export of this source at this precision (size and sha256 checked)."""
    try:
        manifest = json.loads((target / "manifest.json").read_text())
        onnx_file = target / "model.onnx"
        return bool(
            manifest.get("source") == fingerprint
            and manifest.get("precision") == precision
            and onnx_file.stat().st_size == manifest.get("bytes")
            and file_sha256(onnx_file) == manifest.get("sha256")
        )
    except (OSError, ValueError, AttributeError):
        return False


def ensure_onnx_file(folder: Path, precision: str, models_dir: Path) -> Path:
    """The verified ``model.onnx`` for (folder, precision), exported and quantized first if the cache has
    no valid one; concurrent processes wait on a file lock and reuse the first one's export."""
    if precision not in ONNX_PRECISIONS:
        raise ConfigError(f"no ONNX export for precision {precision!r}; use one of {ONNX_PRECISIONS}")
    target = cache_folder(folder, precision, models_dir)
    fingerprint = source_fingerprint(folder)
    if is_valid(target, fingerprint, precision):
        return target / "model.onnx"
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
        if is_valid(target, fingerprint, precision):  # another process built it while we waited
            return target / "model.onnx"
        for stale in target.parent.glob(f".{target.name}.tmp-*"):  # left by a killed export; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
        try:
            _build(folder, precision, tmp, fingerprint)
            if target.exists():
                log.warning("event=onnx_cache_rebuilt folder=%s reason=invalid_or_outdated", target)
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target / "model.onnx"


def _build(folder: Path, precision: str, out: Path, fingerprint: str) -> None:
    """Export (and quantize) into `out`, then write the manifest that makes it valid."""
    started = time.perf_counter()
    log.info("event=onnx_export_started model=%s precision=%s", folder, precision)
    onnx_file = out / "model.onnx"
    _export(folder, precision, onnx_file)
    manifest = {
        "format": _FORMAT,
        "source": fingerprint,
        "source_folder": str(folder.resolve()),
        "precision": precision,
        "bytes": onnx_file.stat().st_size,
        "sha256": file_sha256(onnx_file),
    }
    for path in (out, onnx_file):  # mkdtemp makes the folder private; a model cache is shareable
        path.chmod(0o755 if path.is_dir() else 0o644)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    log.info("event=onnx_export_done out=%s seconds=%.1f", out, time.perf_counter() - started)


def _export(folder: Path, precision: str, onnx_file: Path) -> None:
    """The graph of `folder` at `precision` written to `onnx_file` (the slow part of a build)."""
    if precision == "fp32":
        export_fp32(folder, onnx_file)
        return
    fp32 = onnx_file.with_name("fp32.onnx")
    export_fp32(folder, fp32)
    quantize_int8(fp32, onnx_file)
    fp32.unlink()


def export_fp32(folder: Path, out: Path) -> None:
    """Trace the sentence pipeline of `folder` into an fp32 ONNX file with dynamic batch and length."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager", local_files_only=True)
    wrapper = _pipeline_module(model.eval())
    example = torch.ones(2, 8, dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in _INPUTS}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow that is constant here
        # The TorchScript exporter (dynamo=False) needs no onnxscript, which this project does not install.
        torch.onnx.export(
            wrapper,
            (example, example, torch.zeros_like(example)),
            str(out),
            input_names=list(_INPUTS),
            output_names=[_OUTPUT],
            dynamic_axes={**axes, _OUTPUT: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def quantize_int8(fp32: Path, out: Path) -> None:
    """Dynamic int8 quantization with per-channel weight scales (see the module docstring for why)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]

    # onnxruntime warns on the root logger that static-quantization pre-processing may help; it does not
    # apply to dynamic quantization, and a user's first ingest should not print it.
    def not_the_hint(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing")

    root = logging.getLogger()
    root.addFilter(not_the_hint)
    try:
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.removeFilter(not_the_hint)


def _pipeline_module(model: Any) -> Any:
    """A torch module: embeddings -> encoder with an additive padding mask -> mean over real tokens -> unit
    length. The mask is built here rather than by transformers: its mask helpers branch on shapes in Python,
    which tracing freezes to the example's shape, so padded batches came out wrong."""
    import torch

    class SentencePipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            keep = attention_mask.to(hidden.dtype)
            bias = (1.0 - keep[:, None, None, :]) * torch.finfo(hidden.dtype).min
            hidden = self.model.encoder(hidden, attention_mask=bias).last_hidden_state
            pooled = (hidden * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return SentencePipeline()
