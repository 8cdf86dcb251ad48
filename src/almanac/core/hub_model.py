"""A chat model named by its Hugging Face id: downloaded once into the Hugging Face cache, then read locally.

Only what transformers needs to load a model without running its code is fetched: configs, safetensors
weights, tokenizer files and the chat template (never pickled ``*.bin`` weights, never ``*.py``). Once cached
the model loads offline too. Offline (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE set) only the cache is read;
an id that is neither cached nor downloadable is one ConfigError that says what to set instead.

    hub_snapshot("Qwen/Qwen2.5-0.5B-Instruct")  # ~/.cache/huggingface/hub/models--Qwen--.../snapshots/<sha>
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from almanac.core.embedded_reader import EMBEDDED_READERS
from almanac.core.errors import ConfigError

log = logging.getLogger(__name__)

_FILES = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "*.tiktoken"]
_INSTEAD = (
    f"set ALMANAC_CHAT__MODEL to an embedded reader ({', '.join(EMBEDDED_READERS)}) or to a local folder "
    "with config.json, safetensors weights and the tokenizer"
)


def hub_offline() -> bool:
    """Whether the Hugging Face hub must not be contacted, read now (huggingface_hub reads it at import)."""
    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(flag.strip().upper() in {"1", "ON", "YES", "TRUE"} for flag in flags)


def hub_snapshot(model_id: str) -> Path:
    """The local folder of `model_id`'s files, downloaded on first use; ConfigError when that cannot be."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

    offline = hub_offline()
    try:
        folder = snapshot_download(model_id, allow_patterns=_FILES, local_files_only=offline)
    except HFValidationError as exc:
        raise ConfigError(
            f"chat model {model_id!r} is neither a local folder nor a Hugging Face id; {_INSTEAD}"
        ) from exc
    except RepositoryNotFoundError as exc:  # also private or gated repositories without a token
        raise ConfigError(
            f"chat model {model_id!r} is not a local folder and the Hugging Face hub has no model by that id "
            f"that this machine may read (set HF_TOKEN for a gated one); {_INSTEAD}"
        ) from exc
    except (OSError, ValueError) as exc:  # no connection, offline mode, hub errors, a partial download
        reason = (
            "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache"
            if offline
            else f"the hub could not be reached or failed: {exc.__cause__ or exc}"
        )
        raise ConfigError(
            f"chat model {model_id!r} is not a local folder and could not be downloaded ({reason}); "
            f"{_INSTEAD}, or fetch it where the hub is reachable (`hf download {model_id}`) into this "
            "machine's Hugging Face cache"
        ) from exc
    log.info("chat model from the hugging face cache id=%s folder=%s", model_id, folder)
    return Path(folder)
