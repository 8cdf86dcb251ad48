"""Embedding throughput: MiniLM in fp16 on the device vs fp32 on the same machine's CPU, and their agreement.

The texts are windows of the repository's own prose (samples/documents and the READMEs, which travel with
the working tree) cut at 200 MiniLM word pieces, as the chunker cuts an ingested chunk to its token budget.
Model loading is not timed; tokenisation is, as in `almanac ingest`.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpu_device import Device

ROOT = Path(__file__).resolve().parents[1]
PROSE = ("samples/documents", "README.md", "BENCHMARKS.md", "bench/README.md")
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True, slots=True)
class EmbedSizes:
    """How much to embed where."""

    device_texts: int = 20_000
    cpu_texts: int = 1_000
    device_batch: int = 256
    cpu_batch: int = 64  # the product's default batch (EmbeddingSettings.batch_size)
    tokens: int = 200  # word pieces per text, special tokens aside


SMOKE = EmbedSizes(device_texts=50, cpu_texts=20, device_batch=16, cpu_batch=16)


def sample_texts(count: int, tokenizer: Any, tokens: int, seed: int = 0) -> list[str]:
    """`count` texts of `tokens` word pieces from seeded random offsets in the repository's prose."""
    words = tokens  # a word is 1.3-2 word pieces here: a window of `tokens` words is long enough
    pool: list[str] = []
    for name in PROSE:
        path = ROOT / name
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                pool += _TAG.sub(" ", file.read_text(encoding="utf-8", errors="replace")).split()
    if len(pool) < words:
        raise RuntimeError(f"only {len(pool)} words of prose found under {ROOT}")
    rng = random.Random(seed)
    starts = [rng.randrange(len(pool) - words + 1) for _ in range(count)]
    windows = [" ".join(pool[s : s + words]) for s in starts]
    spans = tokenizer(windows, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [w[: o[min(tokens, len(o)) - 1][1]] for w, o in zip(windows, spans, strict=True)]


def load_model(folder: Path, kind: str, half: bool) -> Any:
    """The sentence-transformers folder on `kind`, fp16 or fp32 whatever the file holds."""
    import torch
    from sentence_transformers import SentenceTransformer

    dtype = torch.float16 if half else torch.float32
    model = SentenceTransformer(
        str(folder), device=kind, local_files_only=True, model_kwargs={"dtype": dtype}
    )
    return model.half() if half else model.float()  # whatever the loader did with model_kwargs


def encode_rate(model: Any, texts: list[str], batch: int, device: Device) -> tuple[Any, float]:
    """(normalised vectors, seconds) of one encode call over `texts`."""
    device.sync()
    start = time.perf_counter()
    vectors = model.encode(
        texts, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    device.sync()
    return vectors, time.perf_counter() - start


def mean_tokens(model: Any, texts: list[str]) -> float:
    """Word pieces per text after the model's truncation (max_seq_length), special tokens included."""
    cut = {"truncation": True, "max_length": model.max_seq_length}
    lengths = [len(ids) for ids in model.tokenizer(texts[:1000], **cut)["input_ids"]]
    return sum(lengths) / len(lengths)


def run(device: Device, folder: Path, sizes: EmbedSizes) -> dict[str, Any]:
    """Chunks/s on the device (fp16) and on the CPU (fp32, all cores), and their cosine agreement."""
    import numpy as np
    import torch

    if not (folder / "modules.json").is_file():
        raise FileNotFoundError(f"no MiniLM folder at {folder}: run bench/gpu_pack.py and carry .gpu along")
    fast = load_model(folder, device.kind, half=True)
    texts = sample_texts(sizes.device_texts, fast.tokenizer, sizes.tokens)
    tokens = mean_tokens(fast, texts)
    encode_rate(fast, texts[: sizes.device_batch * 2], sizes.device_batch, device)  # warm-up
    device.reset_peak()
    gpu_vectors, gpu_s = encode_rate(fast, texts, sizes.device_batch, device)
    peak = device.peak_gib()
    del fast
    device.release()

    cpu = Device("cpu", "cpu")
    slow = load_model(folder, "cpu", half=False)
    sample = texts[: sizes.cpu_texts]
    encode_rate(slow, sample[: sizes.cpu_batch], sizes.cpu_batch, cpu)  # warm-up
    cpu_vectors, cpu_s = encode_rate(slow, sample, sizes.cpu_batch, cpu)
    a, b = gpu_vectors[: len(sample)].astype(np.float64), cpu_vectors.astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    on_device = _side("float16", len(texts), sizes.device_batch, gpu_s, tokens) | {"peak_gib": peak}
    on_cpu = _side("float32", len(sample), sizes.cpu_batch, cpu_s, tokens) | {
        "threads": torch.get_num_threads()
    }
    return {
        "model_folder": str(folder),
        "mean_tokens_per_text": round(tokens, 1),
        "device": on_device,
        "cpu": on_cpu,
        "speedup": on_device["chunks_per_s"] / on_cpu["chunks_per_s"],
        "cosine_fp16_vs_fp32": {
            "texts": len(sample),
            "mean": float(cosine.mean()),
            "min": float(cosine.min()),
        },
    }


def _side(dtype: str, texts: int, batch: int, seconds: float, tokens: float) -> dict[str, Any]:
    return {
        "dtype": dtype,
        "texts": texts,
        "batch": batch,
        "seconds": seconds,
        "chunks_per_s": texts / seconds,
        "tokens_per_s": texts * tokens / seconds,
    }


def summary(result: dict[str, Any]) -> list[str]:
    """Lines for the final table."""
    dev, cpu, cos = result["device"], result["cpu"], result["cosine_fp16_vs_fp32"]
    return [
        f"MiniLM device fp16: {dev['chunks_per_s']:,.0f} chunks/s ({dev['texts']} texts of "
        f"~{result['mean_tokens_per_text']:.0f} tokens, batch {dev['batch']}, peak {dev['peak_gib']} GiB)",
        f"MiniLM CPU fp32:    {cpu['chunks_per_s']:,.1f} chunks/s ({cpu['texts']} texts, {cpu['threads']} "
        f"threads, batch {cpu['batch']}); speed-up x{result['speedup']:.1f}",
        f"cosine fp16 vs fp32: mean {cos['mean']:.6f}, min {cos['min']:.6f}",
    ]
