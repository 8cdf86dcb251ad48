"""The HTTP server's settings (ALMANAC_SERVER__*): address, request limits, rate limits, lookups, CORS."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


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
    max_job_text_chars: int = Field(
        50_000_000,
        ge=0,
        description="characters of text one upload or folder job may ingest (files past it are reported as "
        "failed, to send in another job); 0: no limit",
    )
    job_slice_s: float = Field(
        30.0,
        ge=0,
        description="seconds a job runs while another key has a job queued before it goes back to the "
        "queue (resuming later where it stopped), so keys share the one ingest worker; 0: run to the end",
    )
    job_roots: list[Path] = Field(
        default_factory=list, description="folders POST /v1/jobs may ingest from; empty: ALMANAC_HOME/inbox"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins a browser app may call from, as JSON, e.g. '[\"https://app.example.com\"]'; "
        "empty (default): no CORS headers, so browsers refuse cross-origin calls",
    )
