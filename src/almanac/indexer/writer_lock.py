"""One writer per ALMANAC_HOME: an OS file lock plus a note of who holds it, for a clear message.

The lock is released by the OS when its holder dies (even by SIGKILL), so a crashed ingest never leaves
ALMANAC_HOME locked.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from almanac.core.errors import LockedError


class WriterLock:
    """Context manager holding the writer lock of one ALMANAC_HOME."""

    def __init__(self, home: Path, timeout_s: float = 0.0) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.timeout_s = timeout_s
        self._lock = FileLock(str(home / "writer.lock"))
        self._note = home / "writer.json"

    def _holder(self) -> str:
        try:
            info = json.loads(self._note.read_text())
        except (OSError, ValueError):
            return "another process"
        since = time.strftime("%H:%M:%S", time.localtime(info.get("started", 0)))
        return f"pid {info.get('pid')} on {info.get('host')} (`{info.get('command')}`, since {since})"

    def __enter__(self) -> WriterLock:
        try:
            self._lock.acquire(timeout=self.timeout_s)
        except Timeout:
            raise LockedError(
                f"ALMANAC_HOME={self.home} is being written by {self._holder()}; wait for it to finish, "
                "or let this command wait with ALMANAC_INGEST__LOCK_TIMEOUT_S=SECONDS"
            ) from None
        note = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(sys.argv[:4]),
            "started": time.time(),
        }
        self._note.write_text(json.dumps(note))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._note.unlink(missing_ok=True)
        self._lock.release()
