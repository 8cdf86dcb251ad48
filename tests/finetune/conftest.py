"""Fixtures for fine-tuning tests: a tiny Llama chat model built from a config (no download) and a corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from almanac.core.prompt import NO_ANSWER, SYSTEM_PROMPT
from tests.fakes import HashingRetriever
from tests.finetune.corpus import DOCUMENTS, ROWS, corpus

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _tokenizer(texts: list[str]):
    """A byte-level BPE trained on `texts` in well under a second, with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=["<|im_start|>", "<|im_end|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<pad>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with a 1k-token vocabulary saved as a local model folder (the 'base model')."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    texts = [SYSTEM_PROMPT, NO_ANSWER, *ROWS, *(t for texts in DOCUMENTS.values() for t in texts)]
    tokenizer = _tokenizer(texts * 3)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


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
