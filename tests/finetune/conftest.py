"""Fixtures for fine-tuning tests: a tiny Llama chat model built from a config (no download) and a corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from almanac.core.prompt import NO_ANSWER, SYSTEM_PROMPT
from tests.fakes import HashingRetriever
from tests.finetune.corpus import DOCUMENTS, ROWS, corpus
from tests.finetune.tiny_llama import save_tiny_llama

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with a 1k-token vocabulary saved as a local model folder (the 'base model')."""
    texts = [SYSTEM_PROMPT, NO_ANSWER, *ROWS, *(t for texts in DOCUMENTS.values() for t in texts)]
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), texts * 3)


@pytest.fixture(scope="session")
def one_torch_thread():
    """Two shared cores: one torch thread avoids oversubscription (10x faster for a tiny model)."""
    import torch

    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # TransformersChatModel keeps the thread count when this is set
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(before)


@pytest.fixture
def chunks():
    """The test corpus as catalog chunks."""
    return corpus()


@pytest.fixture
def retriever(chunks) -> HashingRetriever:
    """Hashing-embedder retrieval over the corpus."""
    return HashingRetriever(chunks)
