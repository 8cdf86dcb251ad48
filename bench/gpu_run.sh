#!/usr/bin/env bash
# Run bench/gpu.py on a lent GPU machine, from the repository root, after printing what the machine has.
#   bash bench/gpu_run.sh [extra bench/gpu.py flags]     # JSON to $OUT/gpu.json (bench/out/gpu.json without $OUT)
# Needs .gpu/minilm-fp16 (bench/gpu_pack.py) carried along; wheels in .gpu/whl, if any, go to /tmp/site.
# PYTHON picks the interpreter (python3; e.g. PYTHON=.venv/bin/python ... --device cpu --smoke here).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
nvidia-smi || echo "nvidia-smi: not available"
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' || true
"$py" -c 'import faiss; print("faiss", faiss.__version__, "gpus", faiss.get_num_gpus())' 2>&1 | tail -1 || true
ls /usr/local/cuda*/lib64 2>/dev/null | grep -i cublas | head -3 || true
if [ -d .gpu/whl ] && compgen -G ".gpu/whl/*.whl" >/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
out=${OUT:-bench/out}
mkdir -p "$out"
PYTHONUNBUFFERED=1 "$py" bench/gpu.py --minilm .gpu/minilm-fp16 --out "$out/gpu.json" "$@"
