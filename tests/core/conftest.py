"""Core fixtures: the embedded readers converted once per session, for the e2e tests that use them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from almanac.core.embedded_reader import EMBEDDED_READERS, part_paths
from almanac.core.errors import ConfigError
from almanac.core.model_cache import prepare_model_dir


@pytest.fixture(scope="session")
def converted_reader(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Converts an embedded reader by name (skips when its packages are not installed).

    Conversions go to ALMANAC_TEST_MODELS_DIR when set, the cache the server e2e tests share, so they happen
    once across runs (the 0.5B takes about a minute); otherwise to a folder of this session.
    """
    given = os.environ.get("ALMANAC_TEST_MODELS_DIR")
    models_dir = Path(given) if given else tmp_path_factory.mktemp("models")

    def convert(name: str) -> Path:
        try:
            part_paths(EMBEDDED_READERS[name])
        except ConfigError as exc:
            pytest.skip(str(exc))
        return prepare_model_dir(name, models_dir)

    return convert
