"""The base model to fine-tune: tokenizer + causal LM from a local folder, or one clear ModelError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from almanac.core.errors import ModelError


def load_base_model(model_dir: Path, device: str) -> tuple[Any, Any]:
    """(model, tokenizer) in fp32 (mixed precision comes from the trainer); the tokenizer gets a pad token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(model_dir), dtype=torch.float32, local_files_only=True
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(
            f"cannot load the base model from {model_dir} ({exc}); point --base-model at a folder with "
            "config.json, safetensors weights and a tokenizer, or use 'smollm2'"
        ) from exc
    if not tokenizer.chat_template:
        raise ModelError(
            f"the tokenizer in {model_dir} has no chat template; fine-tune a chat/instruct model"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    module: torch.nn.Module = model  # typed as the base class: PreTrainedModel.to's @wraps hides `to`
    return module.to(device), tokenizer
