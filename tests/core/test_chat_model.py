"""The chat model on a tiny Llama built from a config (random weights, real tokenizer, real peft adapters).

Greedy decoding of a fixed-seed model is deterministic, so outputs can be compared exactly between calls.
One e2e test runs the real embedded SmolLM2 (GGUF conversion included).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from almanac.core.adapter_manifest import AdapterManifest, adapter_folder, list_adapters
from almanac.core.chat_model import TransformersChatModel
from almanac.core.errors import AdapterMismatchError, ConfigError, InputError, LimitError, NotFoundError
from almanac.core.model_cache import model_identity, prepare_model_dir
from almanac.core.types import ChatMessage

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
QUESTION = [ChatMessage("system", "Answer briefly."), ChatMessage("user", "Which car is red?")]
# Only ASCII characters seen here enter the vocabulary, so any token sequence decodes to clean text.
CORPUS = ["the red car drives fast", "a blue sky over the sea", "cars, boats and planes!", "system user"] * 20
CORPUS += [m.content for m in QUESTION] + ["<|im_start|>assistant\n"]
EOS = 0  # <|im_end|> is the first special token


def _tokenizer(folder: Path) -> None:
    """A small byte-level BPE with a ChatML template, saved like any HF tokenizer."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|im_end|>", "<|im_start|>", "<|endoftext|>"]
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=specials))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHATML
    fast.save_pretrained(folder)


def _model(folder: Path, vocab: int, *, always_eos: bool = False) -> None:
    """Random tiny Llama; its EOS logit is pinned to 0 so it never stops early (or always wins)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=EOS, pad_token_id=2,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        if always_eos:
            model.lm_head.weight.zero_()  # all logits tie; greedy takes the first id, EOS
        else:
            model.lm_head.weight[EOS] = 0.0  # some random logit is always above 0
    model.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-llama")
    _tokenizer(folder)
    _model(folder, len(AutoTokenizer.from_pretrained(folder)))
    return folder


@pytest.fixture
def chat(tiny_dir: Path, tmp_path: Path) -> TransformersChatModel:
    adapters = tmp_path / "adapters"
    adapters.mkdir()
    return TransformersChatModel(
        tiny_dir, identity=model_identity(str(tiny_dir)), device="cpu", adapters_dir=adapters
    )


def make_adapter(
    chat: TransformersChatModel, model_dir: Path, name: str, seed: int, **manifest: object
) -> Path:
    """A random (non-zero) LoRA on the tiny model, saved by peft with a manifest, as fine-tuning does."""
    assert chat.adapters_dir is not None
    folder = chat.adapters_dir / name
    torch.manual_seed(seed)
    lora = LoraConfig(
        r=4, lora_alpha=32, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), lora).save_pretrained(folder)
    fields = {"base_model": chat.identity, "created_at": "2025-01-01T00:00:00Z", **manifest}
    AdapterManifest(name=name, **fields).save(folder)  # type: ignore[arg-type]
    return folder


def test_complete_returns_text_and_token_counts(chat: TransformersChatModel) -> None:
    result = chat.complete(QUESTION, 12)
    rendered = chat.tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in QUESTION], add_generation_prompt=True, tokenize=False
    )
    assert result.text
    assert (result.completion_tokens, result.finish_reason) == (12, "length")
    assert result.prompt_tokens == chat.count_tokens(rendered)
    assert chat.count_tokens("") == 0 and chat.count_tokens("the red car") < chat.count_tokens(rendered)


def test_generation_ending_at_eos_reports_stop(tiny_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "eos-model"
    _tokenizer(folder)
    _model(folder, len(AutoTokenizer.from_pretrained(folder)), always_eos=True)
    result = TransformersChatModel(folder, identity="eos", device="cpu").complete(QUESTION, 12)
    assert (result.text, result.completion_tokens, result.finish_reason) == ("", 1, "stop")


def test_stream_pieces_join_to_the_complete_text(chat: TransformersChatModel) -> None:
    pieces = list(chat.stream(QUESTION, 40))
    assert len(pieces) > 1
    assert "".join(pieces) == chat.complete(QUESTION, 40).text


class FlipEvent(threading.Event):
    """A cancel event that reads as set from its `after`-th check on; counts its checks."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.checks = after, 0

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks >= self.after


def test_cancel_stops_generation_early(chat: TransformersChatModel) -> None:
    full = chat.complete(QUESTION, 60).text
    cancel = FlipEvent(after=3)  # the client goes away after the third token
    partial = "".join(chat.stream(QUESTION, 60, cancel=cancel))
    assert cancel.checks == 3
    assert full.startswith(partial) and len(partial) < len(full)


def test_closing_the_stream_stops_the_worker(chat: TransformersChatModel) -> None:
    watcher = FlipEvent(after=10**9)  # never set; counts the tokens generated
    pieces = chat.stream(QUESTION, 200, cancel=watcher)
    next(pieces)
    pieces.close()
    assert chat.complete(QUESTION, 1).completion_tokens == 1  # the lock came free: the worker ended
    assert watcher.checks < 200


def test_prompt_over_the_context_is_refused_before_generation(chat: TransformersChatModel) -> None:
    long = [ChatMessage("user", "the red car drives fast " * 100)]
    with pytest.raises(LimitError, match="context of 256"):
        chat.complete(long, 10)
    with pytest.raises(LimitError):
        chat.stream(long, 10)  # raised at the call, before any piece (the server can still answer 4xx)
    with pytest.raises(LimitError):
        chat.complete(QUESTION, 0)


def test_adapters_change_output_only_when_selected(chat: TransformersChatModel, tiny_dir: Path) -> None:
    make_adapter(chat, tiny_dir, "alpha", seed=1)
    make_adapter(chat, tiny_dir, "beta", seed=2)
    base = chat.complete(QUESTION, 16).text
    chat.load_adapter("alpha")
    chat.load_adapter("alpha")  # already loaded: no-op
    alpha = chat.complete(QUESTION, 16, adapter="alpha").text
    beta = chat.complete(QUESTION, 16, adapter="beta").text  # loaded on first use, no restart
    assert chat.adapters() == ["alpha", "beta"]
    assert len({base, alpha, beta}) == 3
    assert chat.complete(QUESTION, 16).text == base
    assert chat.complete(QUESTION, 16, adapter="alpha").text == alpha
    assert "".join(chat.stream(QUESTION, 16, adapter="beta")) == beta


def test_concurrent_loads_of_one_adapter_load_it_once(chat: TransformersChatModel, tiny_dir: Path) -> None:
    make_adapter(chat, tiny_dir, "alpha", seed=1)
    threads = [threading.Thread(target=chat.load_adapter, args=("alpha",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert chat.adapters() == ["alpha"]


def test_adapter_for_another_base_model_is_refused(chat: TransformersChatModel, tiny_dir: Path) -> None:
    make_adapter(chat, tiny_dir, "other", seed=1, base_model="someone/else")
    with pytest.raises(AdapterMismatchError) as err:
        chat.complete(QUESTION, 4, adapter="other")
    assert "someone/else" in str(err.value) and chat.identity in str(err.value)
    assert chat.adapters() == []


def test_missing_or_incomplete_adapter_names_the_available_ones(
    chat: TransformersChatModel, tiny_dir: Path
) -> None:
    make_adapter(chat, tiny_dir, "alpha", seed=1)
    make_adapter(chat, tiny_dir, "halfway", seed=2, complete=False)
    with pytest.raises(NotFoundError, match="available: alpha"):
        chat.load_adapter("nope")
    with pytest.raises(NotFoundError, match="incomplete"):
        chat.load_adapter("halfway")
    unconfigured = TransformersChatModel(tiny_dir, identity=chat.identity, device="cpu")
    with pytest.raises(NotFoundError, match="no adapters folder"):
        unconfigured.complete(QUESTION, 4, adapter="alpha")


@pytest.mark.parametrize("name", ["../alpha", "a/b", "", ".hidden", "x" * 65, "a b", "/etc"])
def test_bad_adapter_names_are_refused(chat: TransformersChatModel, name: str) -> None:
    with pytest.raises(InputError):
        chat.complete(QUESTION, 4, adapter=name)
    with pytest.raises(InputError):
        adapter_folder(Path("adapters"), name)


def test_manifest_round_trip_and_load_errors(tmp_path: Path) -> None:
    manifest = AdapterManifest(
        "alpha",
        "base/model",
        "2025-01-01T00:00:00Z",
        "ab" * 32,
        {"lr": 2e-4, "r": 8},
        1.25,
        {"f1": 0.5},
        False,
    )
    manifest.save(tmp_path)
    assert AdapterManifest.load(tmp_path) == manifest
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temporary file left behind
    with pytest.raises(NotFoundError):
        AdapterManifest.load(tmp_path / "absent")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        AdapterManifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "alpha", "created_at": "x"}))
    with pytest.raises(InputError, match="base_model"):
        AdapterManifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**asdict(manifest), "validation_loss": "low"}))
    with pytest.raises(InputError, match="wrong type"):
        AdapterManifest.load(tmp_path)


def test_list_adapters_keeps_only_complete_ones(tmp_path: Path) -> None:
    def folder(name: str, complete: bool = True, weights: bool = True) -> Path:
        path = tmp_path / name
        AdapterManifest("stale-name", "base/model", "2025-01-01T00:00:00Z", complete=complete).save(path)
        if weights:
            (path / "adapter_model.safetensors").write_bytes(b"weights")
        return path

    folder("beta"), folder("alpha"), folder("training", complete=False), folder("noweights", weights=False)
    (folder("broken") / "manifest.json").write_text("[]")
    (tmp_path / "no-manifest").mkdir()
    assert [m.name for m in list_adapters(tmp_path)] == ["alpha", "beta"]  # folder names win
    assert list_adapters(tmp_path / "absent") == []


def test_prepare_model_dir_uses_local_folders_and_hub_ids(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert prepare_model_dir(str(tiny_dir), tmp_path) == tiny_dir
    assert model_identity(str(tiny_dir)) == str(tiny_dir.resolve())
    assert model_identity("smollm2") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert model_identity("someone/some-model") == "someone/some-model"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline, an id not in the cache cannot be downloaded
    with pytest.raises(ConfigError, match="not a local folder and could not be downloaded"):
        prepare_model_dir("someone/some-model", tmp_path)
    assert not (tmp_path / "smollm2").exists()


def test_unloadable_model_folders_are_config_errors(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load chat model"):
        TransformersChatModel(tmp_path, identity="empty", device="cpu")
    plain = tmp_path / "no-template"
    shutil.copytree(tiny_dir, plain)
    (plain / "chat_template.jinja").unlink()
    with pytest.raises(ConfigError, match="no chat template"):
        TransformersChatModel(plain, identity="plain", device="cpu")


@pytest.mark.e2e
def test_embedded_smollm2_converts_once_and_answers(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    (models_dir / ".smollm2.tmp-killed").mkdir(parents=True)  # left behind by a killed conversion
    folder = prepare_model_dir("smollm2", models_dir)
    assert sorted(p.name for p in models_dir.iterdir()) == [".smollm2.lock", "smollm2"]
    assert prepare_model_dir("smollm2", models_dir) == folder  # converted once, reused
    start = time.perf_counter()
    chat = TransformersChatModel(folder, identity=model_identity("smollm2"), device="cpu")
    seconds = time.perf_counter() - start
    print(f"smollm2 load from converted folder: {seconds:.2f} s")  # shown with -s
    assert seconds < 10  # typically ~1 s; the bound only catches a re-conversion from GGUF
    answer = chat.complete([ChatMessage("user", "What is the capital of France?")], 24)
    assert "Paris" in answer.text and answer.finish_reason == "stop"
