"""The LlamaIndex baseline of bench/ingest.py: the same HTML files through LlamaIndex's own ingestion.

Runs inside bench/.venv-llamaindex (never imports almanac). The pipeline is the one LlamaIndex documents
for a local FAISS index:

    SimpleDirectoryReader(input_files, file_extractor={".html": HTMLTagReader()})  # a Document per <section>
    -> SentenceSplitter(chunk_size, chunk_overlap, tokenizer=the MiniLM tokenizer)  # our token budget
    -> HuggingFaceEmbedding(local MiniLM folder, embed_batch_size, normalize=True)
    -> FaissVectorStore(IndexFlatIP) via VectorStoreIndex.from_documents -> storage_context.persist()

Model loading is outside the timed part, as it is for ours. Prints one JSON object on the last line of stdout:

    python bench/llamaindex_ingest.py --files files.txt --model MODEL_DIR --persist-dir DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is a local folder; nothing is downloaded
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EMBED_SECONDS = [0.0]  # time inside the embedding model's batch calls, for the phase breakdown


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line of the baseline."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", type=Path, required=True, help="text file with one HTML path per line")
    p.add_argument("--model", required=True, help="local sentence-transformers folder (MiniLM)")
    p.add_argument("--persist-dir", type=Path, required=True)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=200)
    p.add_argument("--chunk-overlap", type=int, default=40)
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def build_components(args: argparse.Namespace) -> tuple[Any, Any]:
    """(embedding model, node parser), both on the local MiniLM folder; loads the model (untimed)."""
    from llama_index.core import Settings
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    class TimedHuggingFaceEmbedding(HuggingFaceEmbedding):
        """LlamaIndex's wrapper unchanged, plus a timer around each batch call."""

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            started = time.perf_counter()
            try:
                return super()._get_text_embeddings(texts)
            finally:
                EMBED_SECONDS[0] += time.perf_counter() - started

    embed = TimedHuggingFaceEmbedding(
        model_name=args.model,
        embed_batch_size=args.batch_size,
        normalize=True,
        device=args.device,
        local_files_only=True,
    )
    tokenizer = embed._model.tokenizer  # count tokens as the model does, like our chunker

    def count_tokens(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False, verbose=False)

    Settings.tokenizer = count_tokens  # keeps LlamaIndex from loading tiktoken's default encoding
    Settings.embed_model = embed
    splitter = SentenceSplitter(
        chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap, tokenizer=count_tokens
    )
    return embed, splitter


def ingest(files: list[Path], embed: Any, splitter: Any, persist_dir: Path, dimension: int) -> dict:
    """Read, split, embed, index and persist; returns counts and phase times in seconds."""
    import faiss
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.core.schema import MetadataMode
    from llama_index.readers.file import HTMLTagReader
    from llama_index.vector_stores.faiss import FaissVectorStore

    started = time.perf_counter()
    extractors = {".html": HTMLTagReader()}
    reader = SimpleDirectoryReader(input_files=[str(f) for f in files], file_extractor=extractors)
    documents = reader.load_data()
    read_s = time.perf_counter() - started
    store = FaissVectorStore(faiss_index=faiss.IndexFlatIP(dimension))
    context = StorageContext.from_defaults(vector_store=store)
    index = VectorStoreIndex.from_documents(
        documents, storage_context=context, transformations=[splitter], embed_model=embed
    )
    indexed = time.perf_counter()
    index.storage_context.persist(persist_dir=str(persist_dir))
    finished = time.perf_counter()
    nodes = list(index.docstore.docs.values())
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]  # what was embedded
    model = embed._model
    tokens = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"]
    return {
        "documents": len(documents),
        "chunks": len(nodes),
        "vectors": int(store._faiss_index.ntotal),
        "embedded_chars": sum(map(len, texts)),
        "embedded_tokens": sum(map(len, tokens)),
        "seconds": finished - started,
        "read_seconds": read_s,
        "embed_seconds": EMBED_SECONDS[0],
        "split_index_seconds": indexed - started - read_s - EMBED_SECONDS[0],
        "persist_seconds": finished - indexed,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the baseline and print its figures as JSON."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args = parse_args(argv)
    files = [Path(line) for line in args.files.read_text().splitlines() if line.strip()]
    loaded = time.perf_counter()
    embed, splitter = build_components(args)
    load_s = time.perf_counter() - loaded
    dimension = int(embed._model.get_embedding_dimension())
    cpu_before = os.times()
    result = ingest(files, embed, splitter, args.persist_dir, dimension)
    cpu_after = os.times()
    import llama_index.core
    import torch

    result.update(
        files=len(files),
        model_load_seconds=load_s,
        cpu_seconds=(cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        llama_index_core=llama_index.core.__version__,
        torch_threads=torch.get_num_threads(),
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
