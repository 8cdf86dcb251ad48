"""Ingestion on Ray Data: the driver side (`almanac ingest --engine ray`, jobs with `"engine": "ray"`).

The Indexer stays the one writer: it holds the writer lock, decides what changed (stat, then sha256 for
files; rendered text hashed for rows) and hands only changed items to `RayStage.submit`. Items are shipped
in windows (bytes for files, so workers need no shared file system) to a Ray Data pipeline whose actor pool
(indexer.ray_worker.ItemEmbedder: one GPU per actor when the cluster has GPUs, else one CPU) parses,
chunks and embeds them; results stream back in order of arrival and the Indexer commits each one through
its BatchWriter as a local ingest does. Workers never see the catalog or the index, so a killed driver
leaves exactly what a killed local ingest leaves, and a re-run resumes the same way.

Without an address, a local Ray instance is started with its node bound to 127.0.0.1; with one (`ray://`
or `HOST:PORT`), the driver joins that cluster, whose nodes need almanac installed (docker/ray-compose.yaml).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from almanac.core.errors import ConfigError
from almanac.core.settings import Settings
from almanac.indexer.batch_writer import BatchWriter
from almanac.indexer.ray_worker import ItemEmbedder, decode_chunks, worker_spec
from almanac.indexer.remote_stage import ChangedItem

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'almanac[ray]'"
# Items per actor call: a file may hold many chunks, a row holds one.
FILES_PER_BATCH, ROWS_PER_BATCH = 8, 256


def ray_installed() -> bool:
    """True when the `ray` extra is installed (ray[data])."""
    return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("pyarrow") is not None


def import_ray(local: bool) -> ModuleType:
    """The ray module, or ConfigError naming the extra to install.

    For a local instance, Ray must not resolve 127.0.0.1 to the machine's outward address (it does on
    Linux, to serve other nodes): with that switched off, every Ray server listens on loopback only.
    """
    if not ray_installed():
        raise ConfigError(f"the Ray engine needs the ray extra: run `{INSTALL_HINT}`, or use --engine local")
    if local:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # read when ray is first imported
    import ray
    import ray.data

    if local:  # ray imported earlier (a test, a notebook) read the variable before it was set
        from ray._private import ray_constants

        setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # noqa: B010 (private, not in the stubs)
    return ray


def connect(address: str | None = None, num_cpus: int | None = None) -> ModuleType:
    """Join the Ray cluster at `address`, or start a local instance on 127.0.0.1 with `num_cpus` (default
    all); once per process, an initialised Ray is reused as it is. Returns the ray module."""
    ray = import_ray(local=not address)
    if ray.is_initialized():
        return ray
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(
                f"cannot join the Ray cluster at {address!r} ({exc}); check --ray-address "
                "(ALMANAC_INGEST__RAY_ADDRESS), or leave it out to run a local Ray"
            ) from None
    else:
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            **quiet,
        )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI and the job state show progress
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


class RayStage:
    """indexer.remote_stage.RemoteStage on a Ray Data actor pool; windows bound the bytes in flight."""

    def __init__(
        self,
        settings: Settings,
        address: str | None = None,
        num_cpus: int | None = None,
        window_bytes: int = 256 * 1024 * 1024,
        window_items: int = 100_000,
    ) -> None:
        self.settings, self.address, self.num_cpus = settings, address, num_cpus
        self.window_bytes, self.window_items = window_bytes, window_items
        self._items: list[ChangedItem] = []
        self._bytes = 0
        self._ray: ModuleType | None = None
        if not ray_installed():  # fail before any work; Ray itself starts only when something changed
            raise ConfigError(
                f"the Ray engine needs the ray extra: run `{INSTALL_HINT}`, or use --engine local"
            )

    @property
    def ray(self) -> ModuleType:
        """The ray module, connected (on first use)."""
        if self._ray is None:
            self._ray = connect(self.address, self.num_cpus)
        return self._ray

    def submit(self, item: ChangedItem, writer: BatchWriter) -> Iterator[ChangedItem]:
        """Take an item; runs the window (returning its results) once it holds enough."""
        self._items.append(item)
        self._bytes += len(item.data)
        if self._bytes >= self.window_bytes or len(self._items) >= self.window_items:
            return self.drain(writer)
        return iter(())

    def drain(self, writer: BatchWriter) -> Iterator[ChangedItem]:
        """Run the items taken so far; yields each with its title, chunks and vectors, or its error."""
        items, self._items, self._bytes = self._items, [], 0
        return self._run(items, writer) if items else iter(())

    def _run(self, items: list[ChangedItem], writer: BatchWriter) -> Iterator[ChangedItem]:
        pending = {item.doc.source: item for item in items}
        dimension = writer.collection.dimension
        log.info("event=ray_window items=%d", len(items))
        for row in self._stream(items, worker_spec(self.settings, writer.embedder.precision)):
            item = pending.pop(str(row["source"]))
            item.error, item.chars = str(row["error"]), int(row["chars"])
            if not item.error:
                item.doc.title = item.doc.title or str(row["title"])  # rows keep the driver's title
                item.doc.chunks = decode_chunks(str(row["chunks"]))
                vectors = np.frombuffer(row["vectors"], dtype=np.float32)
                # The writer refuses vectors of another dimension (IndexMismatchError) before committing.
                n = len(item.doc.chunks)
                item.doc.vectors = vectors.reshape(n, -1) if n else np.zeros((0, dimension), np.float32)
            yield item
        if pending:  # Ray Data retries failed tasks; an item that never came back is a fault, not a skip
            raise RuntimeError(f"{len(pending)} items did not come back from the Ray workers")

    def _stream(self, items: list[ChangedItem], spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Result rows as the actors finish them."""
        actors, resources = self._pool()
        actors = min(actors, len(items))  # no idle actors (each loads the model)
        most = ROWS_PER_BATCH if items[0].doc.kind == "row" else FILES_PER_BATCH
        batch = max(1, min(most, math.ceil(len(items) / actors)))  # a small window still feeds every actor
        rows = [{"source": i.doc.source, "name": i.name, "data": i.data, "locator": i.locator} for i in items]
        data = self.ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch))
        results = data.map_batches(
            ItemEmbedder,
            fn_constructor_kwargs={"spec": spec},
            batch_format="numpy",
            batch_size=batch,
            compute=self.ray.data.ActorPoolStrategy(size=actors),
            **resources,
        )
        try:
            yield from results.iter_rows()
        except self.ray.exceptions.RayError as exc:
            raise ConfigError(
                f"the Ray workers failed: {str(exc).strip().splitlines()[-1]}; every node needs almanac and "
                "the embedding model installed (see the README, Ingestion on Ray)"
            ) from exc

    def _pool(self) -> tuple[int, dict[str, float]]:
        """(actors, resources of each): one actor per GPU when the cluster has GPUs, else one per CPU."""
        cluster = self.ray.cluster_resources()
        gpus = int(cluster.get("GPU", 0))
        if gpus:
            return gpus, {"num_gpus": 1}
        return max(1, int(cluster.get("CPU", 1))), {"num_cpus": 1}
