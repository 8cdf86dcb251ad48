"""Encoder precision benchmark: answer-recall@5 and encode throughput of fp32 and the faster candidates.

One process, the same chunk texts and questions for every candidate (all on CPU):
  fp32         sentence-transformers, torch fp32: the reference (the CPU encoder before this benchmark)
  onnx-fp32    ONNX Runtime, the exported fp32 graph (core/onnx_export.py)
  int8         ONNX Runtime, int8 per-channel: what ALMANAC_EMBEDDING__PRECISION=int8 runs, built through
               the product's models cache (the first build and a cached start are timed too)
  int8-tensor  int8 with per-tensor scales (rejected: loses accuracy on AVX2 CPUs)
  int8-ffn32   int8 per-channel, the FFN down-projections left in fp32 (closer to fp32, slower)

Corpus: the answer benchmark's 60 pages (bench/answer_corpus.question_pages), chunked as `almanac ingest`
chunks them. Questions: the hand-written documentation questions that have an answer
(bench/python_docs_questions.jsonl) and a seeded sample of those the extractive teacher
(bench/finetune_teacher.py) drafts from the chunks. answer-recall@5: the share of questions whose gold answer,
normalised, is in one of the top 5 chunks, by dense search alone and by dense + BM25 fused as the server does.
Throughput: the encode of every chunk text, per candidate, candidates interleaved per round, best round kept.

    .venv/bin/python bench/encoder_precision.py                      # writes bench/out/encoder_precision.json
    .venv/bin/python bench/encoder_precision.py --generated 100 --only int8   # quicker: fp32 and int8 only
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from answer_corpus import QUESTIONS, question_pages

BENCH = Path(__file__).resolve().parent
K, CANDIDATES_PER_SEARCH, RRF_K = 5, 50, 60
Encode = Callable[[Sequence[str]], np.ndarray]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=60, help="pages of the answer corpus (question pages first)")
    p.add_argument("--generated", type=int, default=400, help="generated questions sampled (0: none)")
    p.add_argument("--rounds", type=int, default=1, help="timed encodes of all chunks per candidate")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--only", help="comma-separated candidates to run (fp32 always runs: the reference)")
    p.add_argument("--out", type=Path, default=BENCH / "out" / "encoder_precision.json")
    return p.parse_args(argv)


def chunk_texts(pages: Sequence[Path]) -> list[str]:
    """What `almanac ingest` embeds for these pages: chunked with the MiniLM tokenizer, locator first."""
    from almanac.core.embedder import SentenceTransformerEmbedder
    from almanac.core.settings import Settings
    from almanac.indexer.batch_writer import embed_text
    from almanac.indexer.chunker import Chunker
    from almanac.indexer.readers import read_document

    chunking = Settings().chunking
    chunker = Chunker(SentenceTransformerEmbedder().tokenizer, chunking.size_tokens, chunking.overlap_tokens)
    return [embed_text(c) for page in pages for c in chunker.chunk(read_document(page, 1 << 30).sections)]


def dev_questions(pages: Sequence[Path], texts: Sequence[str], generated: int) -> list[dict[str, str]]:
    """Hand-written questions with an answer, then `generated` drafts of the extractive teacher."""
    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    out = [{"set": "docs", "question": r["question"], "answer": r["answer"]} for r in rows if r.get("answer")]
    if generated:
        from finetune_docs_index import DocsIndex
        from finetune_teacher import ExtractiveWriter

        writer = ExtractiveWriter(DocsIndex.from_pages(pages), seed=0)
        drafts = [d for text in texts for d in writer.write(text, 2)[0]]
        drafts = [
            d for d in drafts if len(d.answer) <= 60
        ]  # long "what does X do" answers are never verbatim
        for d in random.Random(0).sample(drafts, min(generated, len(drafts))):
            out.append({"set": "generated", "question": d.question, "answer": d.answer})
    return out


def candidates(work: Path, batch_size: int) -> tuple[dict[str, Encode], dict[str, float]]:
    """The encoders, each ready to run, and the product int8's cache timings (first build, cached start)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from almanac.core.embedder import SentenceTransformerEmbedder, build_embedder, embedded_minilm_path
    from almanac.core.onnx_encoder import OnnxEmbedder
    from almanac.core.onnx_export import export_fp32
    from almanac.core.settings import EmbeddingSettings

    folder, settings = embedded_minilm_path(), EmbeddingSettings(precision="int8", batch_size=batch_size)
    started = time.perf_counter()
    build_embedder(settings, work / "models").embed(["warm up"])  # export + quantize into the cache
    timings = {"int8_first_build_s": time.perf_counter() - started}
    started = time.perf_counter()
    product = build_embedder(settings, work / "models")
    product.embed(["warm up"])  # a later start: verify the cached file, open the session
    timings["int8_cached_start_s"] = time.perf_counter() - started
    fp32_file = work / "fp32.onnx"
    export_fp32(folder, fp32_file)
    ffn_out = [n for n in _matmuls(fp32_file) if "/output/dense/" in n and "attention" not in n]
    variants = {"int8-tensor": {}, "int8-ffn32": {"per_channel": True, "nodes_to_exclude": ffn_out}}
    for name, options in variants.items():
        quantize_dynamic(str(fp32_file), str(work / f"{name}.onnx"), weight_type=QuantType.QInt8, **options)

    def onnx(name: str, path: Path) -> Encode:
        return OnnxEmbedder(folder, name, 384, work, "int8", batch_size, onnx_file=path).embed

    encoders: dict[str, Encode] = {
        "fp32": SentenceTransformerEmbedder(device="cpu", batch_size=batch_size, precision="fp32").embed,
        "onnx-fp32": onnx("onnx-fp32", fp32_file),
        "int8": product.embed,
    }
    encoders |= {name: onnx(name, work / f"{name}.onnx") for name in variants}
    for encode in encoders.values():
        encode(["warm up"])  # model load and session start stay out of the timings
    return encoders, timings


def encode_all(encoders: dict[str, Encode], texts: Sequence[str], rounds: int) -> tuple[dict, dict]:
    """Vectors of every text per candidate, and each candidate's best encode time over `rounds`."""
    vectors: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    names = list(encoders)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate: no fixed first or last
            started = time.perf_counter()
            vectors[name] = encoders[name](texts)
            elapsed = time.perf_counter() - started
            seconds[name] = min(seconds.get(name, elapsed), elapsed)
            print(f"  round {r + 1}: {name} {elapsed:.1f} s", file=sys.stderr, flush=True)
    return vectors, seconds


def contains(answer: str, text: str) -> bool:
    """The answer-in-context test of bench/answers_run.py: normalised, as whole words."""
    from almanac.finetune.answer_metrics import normalize

    needle = normalize(answer)
    return bool(needle) and f" {needle} " in f" {normalize(text)} "


def top_k(chunks: np.ndarray, queries: np.ndarray, texts: Sequence[str], qs: Sequence[str]) -> dict:
    """Per query: the dense top-k ids and the hybrid (dense + BM25, reciprocal rank fusion) top-k ids."""
    from almanac.core.lexical_index import LexicalIndex
    from almanac.server.retrieval.retriever import reciprocal_rank_fusion

    lexical = LexicalIndex.build(list(range(len(texts))), list(texts))
    dense = np.argsort(-(queries @ chunks.T), axis=1, kind="stable")[:, :CANDIDATES_PER_SEARCH]
    hybrid = []
    for q, ranked in zip(qs, dense, strict=True):
        bm25 = [i for i, _ in lexical.search(q, CANDIDATES_PER_SEARCH)]
        fused = reciprocal_rank_fusion([[int(i) for i in ranked], bm25], RRF_K)
        hybrid.append([i for i, _ in fused[:K]])
    return {"dense": [list(map(int, r[:K])) for r in dense], "hybrid": hybrid}


def _matmuls(path: Path) -> list[str]:
    import onnx

    return [
        n.name for n in onnx.load(str(path), load_external_data=False).graph.node if n.op_type == "MatMul"
    ]


def recall(found: dict, texts: Sequence[str], questions: Sequence[dict]) -> dict[str, dict[str, float]]:
    """answer-recall@5 per question set and search kind."""
    out: dict[str, dict[str, float]] = {}
    for kind, per_query in found.items():
        hits: dict[str, list[bool]] = {}
        for q, ids in zip(questions, per_query, strict=True):
            hit = any(contains(q["answer"], texts[i]) for i in ids)
            hits.setdefault(q["set"], []).append(hit)
            hits.setdefault("all", []).append(hit)
        out[kind] = {name: 100 * float(np.mean(v)) for name, v in hits.items()}
    return out


def agreement(found: dict, reference: dict) -> float:
    """Mean share of the fp32 dense top-5 that a candidate's dense top-5 keeps."""
    pairs = zip(found["dense"], reference["dense"], strict=True)
    return float(np.mean([len(set(a) & set(b)) / K for a, b in pairs]))


def token_count(texts: Sequence[str]) -> int:
    """Tokens the model runs on: special tokens in, truncation at max_seq_length out."""
    from tokenizers import Tokenizer

    from almanac.core.embedder import embedded_minilm_path
    from almanac.core.onnx_encoder import max_seq_length

    folder = embedded_minilm_path()
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_seq_length(folder))
    return sum(len(e.ids) for e in tokenizer.encode_batch(list(texts)))


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Chunks, questions, encodes, searches: every figure of the run."""
    pages = question_pages(total=args.pages)
    texts = chunk_texts(pages)
    questions = dev_questions(pages, texts, args.generated)
    print(f"{len(pages)} pages, {len(texts)} chunks, {len(questions)} questions", file=sys.stderr)
    encoders, timings = candidates(work, args.batch_size)
    if args.only:
        keep = {"fp32", *args.only.split(",")}
        encoders = {name: encode for name, encode in encoders.items() if name in keep}
    vectors, seconds = encode_all(encoders, texts, args.rounds)
    tokens = token_count(texts)
    query_texts = [q["question"] for q in questions]
    found = {n: top_k(vectors[n], encoders[n](query_texts), texts, query_texts) for n in encoders}
    rows = {}
    for name in encoders:
        cosine = np.sum(vectors[name] * vectors["fp32"], axis=1)
        rows[name] = {
            "seconds": seconds[name],
            "texts_per_s": len(texts) / seconds[name],
            "tokens_per_s": tokens / seconds[name],
            "speed_vs_fp32": seconds["fp32"] / seconds[name],
            "cosine_to_fp32": {"min": float(cosine.min()), "mean": float(cosine.mean())},
            "top5_agreement_with_fp32": agreement(found[name], found["fp32"]),
            "recall_at_5": recall(found[name], texts, questions),
        }
    sets = {s: sum(q["set"] == s for q in questions) for s in ("docs", "generated")}
    corpus = {"pages": len(pages), "chunks": len(texts), "tokens": tokens, "questions": sets}
    return {"corpus": corpus, "cache": timings, "rows": rows}


def table(result: dict[str, Any]) -> str:
    """The figures as Markdown, one row per candidate."""
    c = result["corpus"]
    lines = [
        f"{c['pages']} pages, {c['chunks']} chunks, {c['tokens']:,} tokens; questions: "
        f"{c['questions']['docs']} hand-written, {c['questions']['generated']} generated. "
        f"{result['machine']}.",
        "",
        "| encoder | texts/s | tokens/s | speed vs fp32 | cos to fp32 min / mean | top-5 kept | "
        "recall@5 dense: docs / gen / all | recall@5 hybrid: docs / gen / all |",
        "|---|---:|---:|---:|---|---:|---|---|",
    ]
    for name, r in result["rows"].items():
        dense, hybrid = r["recall_at_5"]["dense"], r["recall_at_5"]["hybrid"]
        lines.append(
            f"| {name} | {r['texts_per_s']:.1f} | {r['tokens_per_s']:,.0f} | {r['speed_vs_fp32']:.2f}x | "
            f"{r['cosine_to_fp32']['min']:.4f} / {r['cosine_to_fp32']['mean']:.4f} | "
            f"{r['top5_agreement_with_fp32']:.3f} | "
            + " / ".join(f"{dense.get(s, float('nan')):.1f}" for s in ("docs", "generated", "all"))
            + " | "
            + " / ".join(f"{hybrid.get(s, float('nan')):.1f}" for s in ("docs", "generated", "all"))
            + " |"
        )
    t = result["cache"]
    lines.append(
        f"\nint8 models cache: first start (export + quantize) {t['int8_first_build_s']:.1f} s, "
        f"later start (verify + load) {t['int8_cached_start_s']:.2f} s."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write the JSON."""
    import onnxruntime
    import torch

    args = parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(prefix="encoder-precision-") as tmp:
        result = measure(args, Path(tmp))
    result["machine"] = (
        f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"onnxruntime {onnxruntime.__version__}, load {os.getloadavg()[0]:.1f}"
    )
    result["command"] = " ".join([".venv/bin/python", "bench/encoder_precision.py", *(argv or sys.argv[1:])])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(table(result))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
