"""The adapter manifest: what a LoRA adapter folder records about itself, shared by fine-tuning and serving.

An adapter lives in ``ADAPTERS_DIR/NAME/`` with peft's ``adapter_config.json`` and
``adapter_model.safetensors`` plus our ``manifest.json``. Fine-tuning writes the manifest with
``complete=False`` before training and rewrites it with ``complete=True`` last, so a killed run never looks
like a usable adapter:

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> AdapterManifest("demo", "HuggingFaceTB/SmolLM2-135M-Instruct", "2025-01-01T00:00:00Z").save(folder)
    >>> AdapterManifest.load(folder).base_model
    'HuggingFaceTB/SmolLM2-135M-Instruct'
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from almanac.core.errors import AdapterMismatchError, InputError, NotFoundError

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "adapter_model.safetensors"
MAX_MANIFEST_BYTES = 1024 * 1024  # a manifest is a few hundred bytes; refuse anything absurd
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(slots=True)
class AdapterManifest:
    """Who an adapter is, which base model it was trained on, on what data, and how well it did."""

    name: str
    base_model: str
    created_at: str
    dataset_sha256: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    validation_loss: float | None = None
    evaluation: dict[str, Any] | None = None
    complete: bool = True

    def save(self, folder: Path) -> None:
        """Write ``folder/manifest.json`` atomically (temporary file, fsync, rename)."""
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(asdict(self), indent=2, sort_keys=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{MANIFEST_FILE}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, folder / MANIFEST_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, folder: Path) -> AdapterManifest:
        """Read ``folder/manifest.json``; unknown keys are ignored so older servers read newer manifests."""
        path = folder / MANIFEST_FILE
        if not path.is_file():
            raise NotFoundError(
                f"no adapter manifest at {path}; train an adapter there with `almanac finetune train` "
                "or copy a complete adapter folder"
            )
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise InputError(f"adapter manifest {path} is over {MAX_MANIFEST_BYTES} bytes; replace it")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"adapter manifest {path} is not valid JSON ({exc}); retrain or fix it") from exc
        return cls._from_dict(data, path)

    @classmethod
    def _from_dict(cls, data: object, path: Path) -> AdapterManifest:
        if not isinstance(data, dict):
            raise InputError(f"adapter manifest {path} must hold a JSON object; retrain or fix it")
        known = {f.name for f in fields(cls)}
        missing = [key for key in ("name", "base_model", "created_at") if not isinstance(data.get(key), str)]
        if missing:
            raise InputError(f"adapter manifest {path} lacks text fields {missing}; retrain or fix it")
        manifest = cls(**{key: value for key, value in data.items() if key in known})
        loss = manifest.validation_loss
        if (
            not isinstance(manifest.hyperparameters, dict)
            or not isinstance(manifest.complete, bool)
            or not (loss is None or isinstance(loss, int | float))
        ):
            raise InputError(f"adapter manifest {path} has fields of the wrong type; retrain or fix it")
        return manifest


def adapter_folder(adapters_dir: Path, name: str) -> Path:
    """``adapters_dir/name`` once the name is safe: 1-64 letters, digits, ``- _ .``; no path parts."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InputError(
            f"bad adapter name {name!r}: use 1-64 letters, digits, '-', '_' or '.', starting with a "
            "letter or digit"
        )
    return adapters_dir / name


def list_adapters(adapters_dir: Path) -> list[AdapterManifest]:
    """Complete adapters sorted by name; the folder name wins over a stale ``name`` in a copied manifest."""
    if not adapters_dir.is_dir():
        return []
    found = []
    for folder in sorted(p for p in adapters_dir.iterdir() if p.is_dir()):
        if not _NAME.fullmatch(folder.name) or not (folder / WEIGHTS_FILE).is_file():
            continue
        try:
            manifest = AdapterManifest.load(folder)
        except (InputError, NotFoundError) as exc:
            log.warning("adapter skipped folder=%s reason=%s", folder, exc)
            continue
        if manifest.complete:
            found.append(replace(manifest, name=folder.name))
    return found


def loadable_adapter(adapters_dir: Path, name: str, base_model: str) -> Path:
    """The folder of a complete adapter trained on `base_model`, or the error that says why not."""
    folder = adapter_folder(adapters_dir, name)
    if not (folder / MANIFEST_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise NotFoundError(_missing(adapters_dir, name, "does not exist"))
    manifest = AdapterManifest.load(folder)
    if not manifest.complete:
        raise NotFoundError(
            _missing(adapters_dir, name, "is incomplete (its training is running or was killed)")
        )
    if manifest.base_model != base_model:
        raise AdapterMismatchError(
            f"adapter {name!r} was trained on {manifest.base_model!r} but the chat model is {base_model!r}; "
            "retrain it on this model or serve its base model"
        )
    return folder


def _missing(adapters_dir: Path, name: str, why: str) -> str:
    names = ", ".join(m.name for m in list_adapters(adapters_dir)) or "none"
    return (
        f"adapter {name!r} {why} in {adapters_dir}; available: {names} (train one: `almanac finetune train`)"
    )
