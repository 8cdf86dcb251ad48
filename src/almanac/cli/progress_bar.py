"""A tqdm progress bar for the indexer: items (files or rows), chunks, chunks/s and ETA."""

from __future__ import annotations

import sys
import time
from typing import Never

from tqdm import tqdm


class ProgressBar:
    """Implements indexer.report.Progress on stderr; silent when stderr is not a terminal unless forced."""

    def __init__(self, unit: str = "file", enabled: bool | None = None) -> None:
        self.unit = unit
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: tqdm[Never] | None = None  # a bar without an iterable: advanced by hand
        self._chunks = 0
        self._started = time.perf_counter()

    def start(self, total_items: int | None) -> None:
        """Open the bar."""
        self._started = time.perf_counter()
        self._bar = tqdm(
            total=total_items, unit=self.unit, disable=not self.enabled, dynamic_ncols=True, file=sys.stderr
        )

    def advance(self, items: int = 0, chunks: int = 0) -> None:
        """Move the bar and show chunk throughput."""
        if self._bar is None:
            return
        self._chunks += chunks
        if items:
            self._bar.update(items)
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        self._bar.set_postfix(
            chunks=self._chunks, chunks_per_s=f"{self._chunks / elapsed:.1f}", refresh=False
        )

    def close(self) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()
