"""Training-step throughput on CPU, side by side: trl as shipped, no LoRA dropout, completion-only scoring.

    .venv/bin/python bench/finetune_step.py            # 3 variants x 6 steps of 4 examples, ~12 minutes
    .venv/bin/python bench/finetune_step.py --steps 3  # shorter

Each variant trains, through the product's `train_adapter`, on the same seeded sample of 200 records of the
fine-tuning benchmark's training split (made by `bench/finetune.py --generate-only` when missing), in a
child process of its own, one after another, in the home bench/out/finetune-step. "trl as shipped" runs
with `completion_only_scoring` switched off, so trl's fused LM head scores every position as it does on
any non-Triton device. Prints tokens/s per variant and its ratio to the first; JSON to
bench/out/finetune-step.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

DATASET = BENCH / "out" / "finetune" / "dataset"
VARIANTS = {  # name: (lora_dropout, completion-only scoring)
    "trl as shipped (dropout 0.05, every position scored)": (0.05, False),
    "no LoRA dropout": (0.0, False),
    "no dropout + completion-only scoring": (0.0, True),
}


def run_variant(dropout: float, completion_only: bool, steps: int, threads: int) -> dict[str, float]:
    """One variant in this process: sample, train `steps` steps, return the figures."""
    import finetune as bench
    import finetune_stages as stages

    out = BENCH / "out" / "finetune-step"  # its own home: the benchmark's adapter and samples stay untouched
    args = bench.parse_args(["--threads", str(threads), "--max-steps", str(steps), "--out", str(out)])
    args.out.mkdir(parents=True, exist_ok=True)
    settings = bench.configure(args)
    import almanac.finetune.training as training

    if not completion_only:
        training.completion_only_scoring = lambda device: contextlib.nullcontext()
    shipped = training.TrainingConfig
    training.TrainingConfig = lambda **kw: shipped(**kw, lora_dropout=dropout)  # type: ignore[misc]
    stages.sample(DATASET / "train.jsonl", out / "train.sample.jsonl", 200, args.seed)
    stages.sample(DATASET / "validation.jsonl", out / "validation.sample.jsonl", 8, args.seed)
    result = stages.train(args, settings, out)
    return {"tokens_per_second": result["tokens_per_second"], "runtime_s": result["runtime_s"]}


def main(argv: list[str] | None = None) -> int:
    """Run every variant in its own child process and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variant", help=argparse.SUPPRESS)  # set in the child processes
    args = p.parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(*VARIANTS[args.variant], args.steps, args.threads)))
        return 0
    if not (DATASET / "train.jsonl").exists():
        subprocess.run([sys.executable, str(BENCH / "finetune.py"), "--generate-only"], check=True)
    results = {}
    for name in VARIANTS:
        command = [sys.executable, __file__, "--variant", name, "--steps", str(args.steps)]
        done = subprocess.run([*command, "--threads", str(args.threads)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{name}: failed\n{done.stderr[-2000:]}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    first = next(iter(results.values()))["tokens_per_second"]
    print(f"\n| training step on CPU ({args.steps} steps of 4, {args.threads} threads) | tokens/s | ratio |")
    print("|---|---|---|")
    for name, figures in results.items():
        print(f"| {name} | {figures['tokens_per_second']} | {figures['tokens_per_second'] / first:.2f} |")
    (BENCH / "out" / "finetune-step.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
