"""The chat backend factory: the chat model the settings name, in this process or on a model server.

``ALMANAC_CHAT__BACKEND=transformers`` (the default) loads the model here (core/chat_model.py); ``openai``
sends generation to an OpenAI-compatible server such as vLLM (core/openai_chat_model.py), where
``ALMANAC_CHAT__MODEL`` is the served model name and adapters are served models named after them.

    chat = build_chat_model(Settings())
"""

from __future__ import annotations

from almanac.core.chat_model import TransformersChatModel
from almanac.core.errors import ConfigError
from almanac.core.model_cache import model_identity, prepare_model_dir
from almanac.core.openai_chat_model import OpenAIChatModel
from almanac.core.ports import ChatModel
from almanac.core.settings import Settings


def build_chat_model(settings: Settings) -> ChatModel:
    """The chat model the settings name. In process, the default adapter (if any) is loaded up front to fail
    early; a model server is not contacted until the first request, so a server that starts later is fine."""
    chat = settings.chat
    if chat.backend == "openai":
        return build_openai_chat_model(settings)
    model = TransformersChatModel(
        prepare_model_dir(chat.model, settings.models_dir),
        identity=model_identity(chat.model),
        device=chat.device,
        adapters_dir=settings.adapters_dir,
        context_tokens=chat.context_tokens,
    )
    if chat.default_adapter:
        model.load_adapter(chat.default_adapter)
    return model


def build_openai_chat_model(settings: Settings) -> OpenAIChatModel:
    """The model server at ALMANAC_CHAT__BASE_URL; an embedded reader's name means its Hugging Face id."""
    chat = settings.chat
    if not chat.base_url:
        raise ConfigError("ALMANAC_CHAT__BACKEND=openai needs ALMANAC_CHAT__BASE_URL, the server's API root")
    identity = model_identity(chat.model)
    return OpenAIChatModel(
        chat.base_url,
        identity,
        chat.api_key.get_secret_value() if chat.api_key else None,
        adapters_dir=settings.adapters_dir,
        timeout_s=chat.timeout_s,
        connect_timeout_s=chat.connect_timeout_s,
        retries=chat.retries,
    )
