"""The compute dtype: fp32 on CPU unless bf16 weights meet a CPU with bf16 instructions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from almanac.core.compute_dtype import compute_dtype, saved_dtype


@pytest.mark.parametrize(
    ("saved", "native", "expected"),
    [
        ("bfloat16", True, torch.bfloat16),
        ("bfloat16", False, torch.float32),  # emulated bf16 is slower than fp32: widen
        ("float32", True, torch.float32),
        ("float16", True, torch.float32),
        (None, True, torch.float32),
    ],
)
def test_cpu_keeps_bf16_weights_only_with_bf16_instructions(
    saved: str | None, native: bool, expected: torch.dtype, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if saved is not None:
        (tmp_path / "config.json").write_text(json.dumps({"dtype": saved}))
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: native, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))  # leave the thread count alone
    assert compute_dtype(torch, "cpu", tmp_path) == expected


def test_saved_dtype_reads_old_and_new_config_keys(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    assert saved_dtype(tmp_path) == "bfloat16"
    (tmp_path / "config.json").write_text("[not a config")
    assert saved_dtype(tmp_path) is None
    assert saved_dtype(tmp_path / "absent") is None
