"""`python -m tests.server.serve_fakes PORT`: a real `almanac serve`-like process with the fakes (hashing
embedder from the ALMANAC_* environment, scripted chat model), for tests that SIGKILL a server mid-job."""

from __future__ import annotations

import logging
import sys

import uvicorn

from almanac.core.catalog import Catalog
from almanac.core.embedder import HashingEmbedder
from almanac.core.settings import Settings
from almanac.server.app import create_app
from almanac.server.services import Services
from tests.fakes import ScriptedChatModel


def main(port: int) -> None:
    """Serve on 127.0.0.1:`port` until killed."""
    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    embedder = HashingEmbedder(settings.embedding.hashing_dimension)
    services = Services.assemble(settings, Catalog(settings.catalog_url), embedder, ScriptedChatModel())
    services.jobs.poll_s = 0.1
    uvicorn.run(create_app(services=services), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]))
