"""One writer per ALMANAC_HOME, with a message that names the holder."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from almanac.core.errors import LockedError
from almanac.indexer.writer_lock import WriterLock

HOLD = (
    "from pathlib import Path; import sys, time\n"
    "from almanac.indexer.writer_lock import WriterLock\n"
    "with WriterLock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(30)\n"
)


def test_second_writer_is_told_who_holds_the_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=rf"pid {holder.pid} .*LOCK_TIMEOUT_S"), WriterLock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL of the holder releases the lock: the next writer gets it at once.
    started = time.perf_counter()
    with WriterLock(tmp_path, timeout_s=5):
        assert time.perf_counter() - started < 5


def test_waiting_writer_gets_the_lock_when_released(tmp_path: Path) -> None:
    first = WriterLock(tmp_path)
    with first, pytest.raises(LockedError):
        WriterLock(tmp_path, timeout_s=0.2).__enter__()
    with WriterLock(tmp_path, timeout_s=0.2):
        assert (tmp_path / "writer.json").exists()
    assert not (tmp_path / "writer.json").exists()
