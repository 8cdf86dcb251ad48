"""The adapter registry: which adapter the server answers with by default, switched without a restart.

State lives in ``ADAPTERS_DIR/registry.json``, written atomically (temporary file + ``os.replace``) under a
file lock, so concurrent `promote`/`rollback` calls never interleave and a reader never sees half a file::

    {"default": "support-v2", "previous": [null, "support-v1"], "history": [{"action": "promote", ...}]}

`previous` is the stack `rollback` pops (``null`` = the base model); `history` keeps every switch. The server
calls `default()` per request; it re-reads the file only when it was replaced (inode, mtime or size changed).

Promotion compares evaluations stored in adapter manifests (``manifest.evaluation``, written by
``almanac eval --save``): the candidate's ``score`` must not be lower than the current default's, or than
the base model's ``base_score`` when no adapter is the default. Scores from different question sets
(``questions_sha256``) are not comparable. ``force=True`` skips every check but existence.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from almanac.core.adapter_manifest import MANIFEST_FILE, AdapterManifest, adapter_folder, list_adapters
from almanac.core.errors import InputError, NotFoundError

log = logging.getLogger(__name__)

REGISTRY_FILE = "registry.json"
MAX_HISTORY = 1000
MAX_REGISTRY_BYTES = 4 * 1024 * 1024


class AdapterRegistry:
    """The default-adapter pointer of one adapters folder, with promotion rules and rollback."""

    def __init__(self, adapters_dir: Path, lock_timeout_s: float = 10.0) -> None:
        self.adapters_dir = adapters_dir
        self.path = adapters_dir / REGISTRY_FILE
        self._lock = FileLock(str(adapters_dir / f".{REGISTRY_FILE}.lock"), timeout=lock_timeout_s)
        self._cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    def _read(self) -> dict[str, Any]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {"default": None, "previous": [], "history": []}
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # each write is a new inode
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        if stat.st_size > MAX_REGISTRY_BYTES:
            raise InputError(
                f"{self.path} is over {MAX_REGISTRY_BYTES} bytes; move it away and promote again"
            )
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(
                f"{self.path} is not valid JSON ({exc}); move it away and promote again"
            ) from exc
        if not isinstance(state, dict) or not isinstance(state.get("previous", []), list):
            raise InputError(f"{self.path} is not an adapter registry; move it away and promote again")
        state.setdefault("previous", [])
        state.setdefault("history", [])
        self._cache = (stamp, state)
        return state

    def _write(self, state: dict[str, Any]) -> None:
        self.adapters_dir.mkdir(parents=True, exist_ok=True)
        state["history"] = state["history"][-MAX_HISTORY:]
        fd, tmp = tempfile.mkstemp(dir=self.adapters_dir, prefix=f".{REGISTRY_FILE}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(state, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._cache = None

    def default(self) -> str | None:
        """The adapter the server answers with when a request names none (None: the base model)."""
        value = self._read().get("default")
        return value if isinstance(value, str) else None

    def list(self) -> list[AdapterManifest]:
        """Every complete adapter, sorted by name."""
        return list_adapters(self.adapters_dir)

    def history(self) -> builtins.list[dict[str, Any]]:  # `list` here is the method above
        """Every promotion and rollback, oldest first."""
        return list(self._read()["history"])

    def promote(self, name: str, force: bool = False) -> str | None:
        """Make `name` the default; returns the previous default. Refused when worse, unless `force`."""
        candidate = _complete_manifest(self.adapters_dir, name)
        self.adapters_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            state = self._read()
            current = state.get("default")
            if not force:
                self._check_better(candidate, current)
            state = {**state, "default": name, "previous": [*state["previous"], current]}
            state["history"] = [
                *state["history"],
                _event("force-promote" if force else "promote", name, current),
            ]
            self._write(state)
        log.info("adapter promoted name=%s previous=%s force=%s", name, current, force)
        return current

    def rollback(self) -> str | None:
        """Return to the default before the last promotion; returns the new default (None: base model)."""
        self.adapters_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            state = self._read()
            if not state["previous"]:
                raise InputError("nothing to roll back: no adapter was promoted; see `almanac adapters list`")
            previous: list[str | None] = state["previous"]
            *rest, target = previous
            if target is not None:
                _complete_manifest(self.adapters_dir, target)
            current = state.get("default")
            state = {**state, "default": target, "previous": rest}
            state["history"] = [*state["history"], _event("rollback", target, current)]
            self._write(state)
        log.info("adapter rolled back default=%s from=%s", target, current)
        return target

    def _check_better(self, candidate: AdapterManifest, current: str | None) -> None:
        if candidate.evaluation is None or not _score(candidate.evaluation):
            raise InputError(
                f"adapter {candidate.name!r} has no stored evaluation; run `almanac eval QA.jsonl --adapter "
                f"{candidate.name} --save` first, or promote with --force"
            )
        baseline, label = _baseline(self.adapters_dir, candidate, current)
        if baseline is None:
            return
        same_questions = baseline.get("questions_sha256") == candidate.evaluation.get("questions_sha256")
        if not same_questions:
            raise InputError(
                f"adapter {candidate.name!r} and {label} were evaluated on different question sets; "
                "evaluate both on the same QA file, or promote with --force"
            )
        ours, theirs = (
            _score(candidate.evaluation),
            _score(baseline, "base_score" if current is None else "score"),
        )
        if ours is not None and theirs is not None and ours < theirs:
            raise InputError(
                f"adapter {candidate.name!r} scores {ours:.3f}, worse than {label} ({theirs:.3f}); "
                "not promoted (use --force to promote anyway)"
            )


def _score(evaluation: dict[str, Any], key: str = "score") -> float | None:
    value = evaluation.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _baseline(
    adapters_dir: Path, candidate: AdapterManifest, current: str | None
) -> tuple[dict[str, Any] | None, str]:
    """The evaluation to beat: the current default's, or the base model's as measured beside the candidate."""
    assert candidate.evaluation is not None
    if current is None:
        has_base = _score(candidate.evaluation, "base_score") is not None
        return (candidate.evaluation if has_base else None), "the base model"
    if current == candidate.name:
        return None, current
    try:
        manifest = AdapterManifest.load(adapter_folder(adapters_dir, current))
    except NotFoundError:
        return None, current  # the old default is gone; nothing to compare with
    return manifest.evaluation, f"the current default {current!r}"


def _complete_manifest(adapters_dir: Path, name: str) -> AdapterManifest:
    folder = adapter_folder(adapters_dir, name)
    if not (folder / MANIFEST_FILE).is_file():
        names = ", ".join(m.name for m in list_adapters(adapters_dir)) or "none"
        raise NotFoundError(f"no adapter {name!r} in {adapters_dir}; available: {names}")
    manifest = AdapterManifest.load(folder)
    if not manifest.complete:
        raise NotFoundError(f"adapter {name!r} is incomplete (training running or killed); retrain it")
    return manifest


def _event(action: str, name: str | None, previous: str | None) -> dict[str, Any]:
    return {
        "action": action,
        "name": name,
        "previous": previous,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
