"""Teachers: the chat model that writes questions. The configured chat model, a local model folder, or any
OpenAI-compatible endpoint (vLLM, a hosted model) through core's `OpenAIChatModel`."""

from __future__ import annotations

from almanac.core.openai_chat_model import OpenAIChatModel
from almanac.core.ports import ChatModel
from almanac.core.settings import Settings

TEACHER_TEMPERATURE = 0.7  # some variety across the questions about one passage
TEACHER_TIMEOUT_S = 120.0  # a whole batch of questions is one unstreamed reply


def build_teacher(
    settings: Settings, model: str | None = None, url: str | None = None, api_key: str | None = None
) -> ChatModel:
    """The teacher the flags name: an endpoint (`url`), a local model (`model`), else the chat model the
    settings name (ALMANAC_CHAT__*)."""
    if url:
        return OpenAIChatModel(
            url, model or "default", api_key, temperature=TEACHER_TEMPERATURE, timeout_s=TEACHER_TIMEOUT_S
        )
    from almanac.core.chat_backend import build_chat_model
    from almanac.core.chat_model import TransformersChatModel
    from almanac.core.model_cache import model_identity, prepare_model_dir

    if model is None:
        return build_chat_model(settings)
    folder = prepare_model_dir(model, settings.models_dir)
    return TransformersChatModel(folder, identity=model_identity(model), device=settings.chat.device)
