"""GPU benchmark: MiniLM embedding, vector search at 1M vectors, generation and LoRA training of the chat
model's architecture, on one GPU machine; under 3 minutes on an H100/H200.

    bash bench/gpu_run.sh                                    # on the device (prints versions, then runs this)
    python3 bench/gpu.py --minilm .gpu/minilm-fp16 --out "$OUT/gpu.json"
    .venv/bin/python bench/gpu.py --device cpu --smoke       # every code path on the CPU, tiny sizes (~1 min)

Sections, in order (``--sections`` picks some):
- embedding: MiniLM fp16 chunks/s on the GPU vs fp32 on the same machine's CPU, their cosine (gpu_embed.py)
- search: exact search in torch (fp32, fp16) and FAISS GPU flat/IVF when faiss imports with GPUs, at 1M x 384,
  p50/p99 ms at batch 1 and 32, recall@10 vs numpy exact on the CPU (gpu_search.py)
- generation: Qwen2.5-Coder-1.5B shapes, random weights, bf16, greedy, 512-token prompt, 256 new tokens
  forced, batch 1 and 8: tokens/s and time to first token (gpu_lm.py)
- training_bf16 / training_fp32: one LoRA run each, 8 x 1024 tokens a step, 30 timed steps (gpu_lm.py)

Without a GPU it prints "no GPU present", writes that to the JSON and exits 0. The JSON (``--out``) is
rewritten after each section and each searcher, so a run cut short keeps what it measured; a section that
fails records its error and the next one runs. MiniLM comes from ``.gpu/minilm-fp16``, made by
``bench/gpu_pack.py``. Only torch, numpy, sentence-transformers, transformers and peft are needed (faiss when
present); nothing of the almanac package is imported.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import gpu_embed  # noqa: E402
import gpu_lm  # noqa: E402
import gpu_search  # noqa: E402
from gpu_device import Device, probe  # noqa: E402

Record = Callable[[dict[str, Any]], None]
Section = tuple[Callable[[Record], dict[str, Any]], Callable[[dict[str, Any]], list[str]]]
SECTIONS = ("embedding", "search", "generation", "training_bf16", "training_fp32")


class Report:
    """The JSON report, rewritten whole (atomically) every time something is added."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.data: dict[str, Any] = header | {"sections": {}}

    def put(self, section: str, result: dict[str, Any]) -> None:
        """Record (or replace) one section's result and write the file."""
        self.data["sections"][section] = result
        self.write()

    def write(self) -> None:
        """Write the file (to a temporary name first, so a kill never leaves half a JSON)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.part")
        partial.write_text(json.dumps(self.data, indent=2, default=str) + "\n", encoding="utf-8")
        partial.replace(self.path)


def sections(device: Device, args: argparse.Namespace) -> dict[str, Section]:
    """Each section's work (given a callback for partial results) and its summary lines."""
    embed = gpu_embed.SMOKE if args.smoke else gpu_embed.EmbedSizes()
    search = gpu_search.SMOKE if args.smoke else gpu_search.SearchSizes()
    lm = gpu_lm.SMOKE if args.smoke else gpu_lm.LmSizes()
    return {
        "embedding": (lambda _: gpu_embed.run(device, args.minilm, embed), gpu_embed.summary),
        "search": (lambda record: gpu_search.run(device, search, record), gpu_search.summary),
        "generation": (lambda _: gpu_lm.generation(device, lm), gpu_lm.summary_generation),
        "training_bf16": (lambda _: gpu_lm.training(device, lm, "bfloat16"), gpu_lm.summary_training),
        "training_fp32": (lambda _: gpu_lm.training(device, lm, "float32"), gpu_lm.summary_training),
    }


def run_section(name: str, section: Section, report: Report, device: Device) -> list[str]:
    """Run one section, guarded; record it; its summary lines (or its error)."""
    work, summary = section
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    try:
        result = work(lambda partial: report.put(name, partial | {"partial": True}))
        lines = summary(result)
    except Exception as exc:  # recorded; the next section still runs
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=-3)}
        lines = [f"{name}: error: {result['error']}"]
    result["section_seconds"] = round(time.perf_counter() - start, 1)
    report.put(name, result)
    device.release()
    print("\n".join(lines) + f"\n   ({result['section_seconds']} s)", flush=True)
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="cpu runs the GPU code paths on the CPU, to check the logic (use with --smoke)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and a tiny model")
    parser.add_argument(
        "--minilm",
        type=Path,
        default=BENCH.parent / ".gpu" / "minilm-fp16",
        help="sentence-transformers folder (bench/gpu_pack.py makes it)",
    )
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "gpu.json")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {SECTIONS}")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if unknown := set(args.sections) - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}; pick from {SECTIONS}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Probe the device, run the sections, print the table; 0 also when there is no GPU."""
    args = parse_args(argv)
    started = time.perf_counter()
    device, message = probe(args.device)
    print(message, flush=True)
    header = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "smoke": args.smoke,
        "device": None,
        "message": message,
    }
    report = Report(args.out, header)
    if device is None:
        report.write()
        print(f"wrote {args.out}")
        return 0
    report.data["device"] = device.describe()
    print(json.dumps(report.data["device"]), flush=True)
    work = sections(device, args)
    table = [line for name in args.sections for line in run_section(name, work[name], report, device)]
    report.data["wall_s"] = round(time.perf_counter() - started, 1)
    report.write()
    title = f"{device.name} ({'smoke sizes' if args.smoke else 'full sizes'}), {report.data['wall_s']} s"
    print("\n" + "=" * len(title) + f"\n{title}\n" + "=" * len(title) + "\n" + "\n".join(table))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
