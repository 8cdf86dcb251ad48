"""The device bench/gpu.py measures: which one it is, how to wait for it, how much memory a section used.

`probe("auto")` answers None, with the reason, on a machine without a GPU: the benchmark then measures
nothing. `probe("cpu")` runs every code path on the CPU, so the script's logic can be checked anywhere
(``--device cpu --smoke``); its figures mean nothing for a GPU.
"""

from __future__ import annotations

import gc
import os
import platform
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Device:
    """A torch device kind ('cuda' or 'cpu') and what it is."""

    kind: str
    name: str
    forced_cpu: bool = False

    @property
    def is_gpu(self) -> bool:
        """True on a CUDA device."""
        return self.kind == "cuda"

    def sync(self) -> None:
        """Wait for queued GPU work, so a wall-clock reading covers it."""
        if self.is_gpu:
            import torch

            torch.cuda.synchronize()

    def reset_peak(self) -> None:
        """Start a new peak-memory reading."""
        if self.is_gpu:
            import torch

            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        """Peak GPU memory allocated by torch since `reset_peak` (None on CPU)."""
        if not self.is_gpu:
            return None
        import torch

        return round(torch.cuda.max_memory_allocated() / 2**30, 2)

    def release(self) -> None:
        """Hand freed tensors back, between sections."""
        gc.collect()
        if self.is_gpu:
            import torch

            torch.cuda.empty_cache()

    def describe(self) -> dict[str, Any]:
        """What the JSON records about the machine."""
        import torch

        info: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "forced_cpu": self.forced_cpu,
            "torch": torch.__version__,
            "torch_cuda": torch.version.cuda,
            "cpu_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
        }
        if self.is_gpu:
            props = torch.cuda.get_device_properties(0)
            info |= {
                "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "compute_capability": f"{props.major}.{props.minor}",
                "multiprocessors": props.multi_processor_count,
                "gpu_count": torch.cuda.device_count(),
                "bf16": torch.cuda.is_bf16_supported(),
            }
        return info


def probe(wanted: str) -> tuple[Device | None, str]:
    """(device, message): None and the reason when `wanted` is 'auto' or 'cuda' and torch sees no GPU."""
    try:
        import torch
    except ImportError as exc:
        return None, f"no GPU present: torch cannot be imported ({exc}); nothing measured"
    if wanted == "cpu":
        return Device("cpu", platform.processor() or platform.machine(), forced_cpu=True), (
            "GPU code paths forced onto the CPU (--device cpu): the figures check the logic, not a GPU"
        )
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (a CPU-only build)"
        return None, (
            f"no GPU present: torch {torch.__version__} (CUDA build {build}) sees no CUDA device; "
            "nothing GPU-related measured"
        )
    return Device("cuda", torch.cuda.get_device_name(0)), f"GPU: {torch.cuda.get_device_name(0)}"
