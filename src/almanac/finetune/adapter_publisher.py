"""Where training writes: a resumable work folder, then an adapter folder that appears only when complete.

ADAPTERS_DIR/.NAME.work/       checkpoints of a run and run.json (what the run was started with)
ADAPTERS_DIR/.NAME.tmp-XXXX/   the adapter being written (skipped by list_adapters: leading dot)
ADAPTERS_DIR/NAME/             renamed into place once weights and manifest are on disk
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from almanac.core.adapter_manifest import WEIGHTS_FILE, AdapterManifest

log = logging.getLogger(__name__)

RUN_FILE = "run.json"


def work_folder(adapters_dir: Path, name: str, run: dict[str, Any]) -> Path:
    """The checkpoint folder for a run; emptied first when it holds a run started with other settings."""
    work = adapters_dir / f".{name}.work"
    recorded = work / RUN_FILE
    wanted = json.dumps(run, sort_keys=True)
    if work.exists() and (not recorded.is_file() or recorded.read_text(encoding="utf-8") != wanted):
        log.warning("discarding checkpoints of a different run folder=%s", work)
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    recorded.write_text(wanted, encoding="utf-8")
    return work


def publish_adapter(model: Any, manifest: AdapterManifest, target: Path, replace: bool = False) -> None:
    """Save the peft adapter (safetensors) and the manifest, then rename the folder to `target`.

    With `replace`, an existing adapter at `target` is moved aside first and deleted after the swap.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    old: Path | None = None
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        if not (tmp / WEIGHTS_FILE).is_file():
            raise RuntimeError(f"peft wrote no {WEIGHTS_FILE} in {tmp}")
        manifest.save(tmp)
        if target.exists() and replace:
            old = target.with_name(f".{target.name}.old-{tmp.name.rsplit('-', 1)[-1]}")
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            os.replace(old, target)  # put the previous adapter back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    log.info("adapter published folder=%s", target)
