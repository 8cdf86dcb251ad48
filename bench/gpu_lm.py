"""The chat model on the device: generation tokens/s and one LoRA training run's tokens/s, both in bf16.

The weights cannot travel, so the model is Qwen2.5-Coder-1.5B-Instruct's architecture
(bench/qwen2_5_coder_1_5b_config.json) with random weights: the same shapes do the same work, so
throughput and memory are the real model's. Token ids are random too. The product's GGUF-converted copy
keeps a separate LM head (the GGUF has one): 0.23B more parameters to hold, the same work per token.

Training follows src/almanac/finetune/training.py: LoRA r=16, alpha=32, no dropout, on every linear layer
of the decoder, AdamW at lr 2e-4, bf16 autocast, no activation checkpointing; as a plain torch loop (trl
and datasets are not on the device) scoring every position. It runs twice: fp32 base weights under bf16
autocast (what the product's trainer does) and bf16 base weights (half the memory).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_device import Device

CONFIG = Path(__file__).resolve().parent / "qwen2_5_coder_1_5b_config.json"
TINY = {  # --smoke: the same architecture, small enough for a CPU
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1024,
    "bos_token_id": 1,
    "eos_token_id": 2,
}


@dataclass(frozen=True, slots=True)
class LmSizes:
    """Model size, generation shape and training shape."""

    overrides: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 512
    new_tokens: int = 256
    generation_batches: tuple[int, ...] = (1, 8)
    sequence: int = 1024
    batch: int = 8
    warmup_steps: int = 3
    steps: int = 30


SMOKE = LmSizes(TINY, prompt_tokens=16, new_tokens=8, sequence=64, batch=2, warmup_steps=1, steps=2)


def build_model(sizes: LmSizes, dtype_name: str, device: Device) -> Any:
    """The causal LM of the config (plus `overrides`), randomly initialised (seed 0) on the device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(**(json.loads(CONFIG.read_text()) | sizes.overrides))
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(0)
    try:
        with torch.device(device.kind):  # initialised where it runs: no 6 GB copy from the host
            return AutoModelForCausalLM.from_config(config, dtype=dtype)
    except (RuntimeError, TypeError, ValueError, NotImplementedError) as exc:
        print(f"initialising on {device.kind} failed ({exc}); initialising on the CPU instead", flush=True)
        device.release()
        return AutoModelForCausalLM.from_config(config, dtype=dtype).to(device.kind)


def random_ids(model: Any, shape: tuple[int, int], seed: int, kind: str) -> Any:
    """Token ids drawn uniformly from the vocabulary, special tokens excluded."""
    import torch

    gen = torch.Generator(device=kind).manual_seed(seed)
    return torch.randint(3, model.config.vocab_size - 300, shape, generator=gen, device=kind)


def generate(model: Any, ids: Any, new_tokens: int, device: Device) -> tuple[Any, float]:
    """(output ids, seconds): greedy, with the KV cache, exactly `new_tokens` tokens per row."""
    from transformers import GenerationConfig

    eos = model.config.eos_token_id
    setup = GenerationConfig(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        use_cache=True,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    device.sync()
    start = time.perf_counter()
    out = model.generate(ids, attention_mask=ids.new_ones(ids.shape), generation_config=setup)
    device.sync()
    return out, time.perf_counter() - start


def generation(device: Device, sizes: LmSizes) -> dict[str, Any]:
    """Tokens/s and time to first token at each batch size, bf16 weights."""
    import torch

    model = build_model(sizes, "bfloat16", device).eval()
    runs = {}
    with torch.inference_mode():
        generate(model, random_ids(model, (1, sizes.prompt_tokens), 0, device.kind), 4, device)  # warm-up
        for batch in sizes.generation_batches:
            ids = random_ids(model, (batch, sizes.prompt_tokens), batch, device.kind)
            first = statistics.median(generate(model, ids, 1, device)[1] for _ in range(3))
            device.reset_peak()
            out, seconds = generate(model, ids, sizes.new_tokens, device)
            made = out.shape[1] - ids.shape[1]
            runs[f"batch_{batch}"] = {
                "new_tokens_per_row": made,
                "seconds": seconds,
                "time_to_first_token_s": first,
                "tokens_per_s": batch * made / seconds,
                "decode_tokens_per_s_per_row": (made - 1) / max(seconds - first, 1e-9),
                "peak_gib": device.peak_gib(),
            }
    params = sum(p.numel() for p in model.parameters())
    return {"dtype": "bfloat16", "parameters": params, "prompt_tokens": sizes.prompt_tokens, "runs": runs}


def lora_model(model: Any) -> Any:
    """Our LoRA settings (finetune/training.py `lora_config`), wrapped around `model`."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    return get_peft_model(model, config)


def snapshot(model: Any) -> dict[str, Any]:
    """Copies of every LoRA tensor and of a few base tensors, to tell afterwards what training moved."""
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    base = {frozen[0], frozen[len(frozen) // 2], frozen[-1]}  # the embedding, a middle layer, the last norm
    base |= {n for n in frozen if n.endswith("layers.0.self_attn.q_proj.base_layer.weight")}
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad or n in base}


def train_steps(model: Any, sizes: LmSizes, device: Device) -> tuple[float, list[float]]:
    """(seconds of the timed steps, every step's loss), warm-up steps first and untimed."""
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=2e-4, fused=device.is_gpu or None)
    losses, start = [], 0.0
    for step in range(sizes.warmup_steps + sizes.steps):
        if step == sizes.warmup_steps:
            device.sync()
            start = time.perf_counter()
        ids = random_ids(model, (sizes.batch, sizes.sequence), 100 + step, device.kind)
        with torch.autocast(device.kind, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        losses.append(loss.detach())  # read after the loop: .item() here would wait for the GPU each step
    device.sync()
    return time.perf_counter() - start, [float(x) for x in losses]


def training(device: Device, sizes: LmSizes, weights: str) -> dict[str, Any]:
    """One LoRA run with base weights in `weights` (a torch dtype name): tokens/s, peak memory, what moved."""
    import torch

    model = build_model(sizes, weights, device)
    model.config.use_cache = False
    model = lora_model(model).train()
    before = snapshot(model)
    device.reset_peak()
    seconds, losses = train_steps(model, sizes, device)
    after = dict(model.named_parameters())
    moved = {n: not torch.equal(before[n], after[n]) for n in before}
    lora = [n for n in moved if "lora_" in n]
    base = [n for n in moved if "lora_" not in n]
    tokens = sizes.steps * sizes.batch * sizes.sequence
    return {
        "base_weights": weights,
        "autocast": "bfloat16",
        "batch": sizes.batch,
        "sequence": sizes.sequence,
        "timed_steps": sizes.steps,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "seconds_per_step": seconds / sizes.steps,
        "peak_gib": device.peak_gib(),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "loss_first_last": [losses[0], losses[-1]],
        "lora_tensors_changed": f"{sum(moved[n] for n in lora)}/{len(lora)}",
        "base_tensors_unchanged": f"{sum(not moved[n] for n in base)}/{len(base)}",
    }


def summary_generation(result: dict[str, Any]) -> list[str]:
    """Lines for the final table."""
    lines = [f"generation bf16, {result['parameters'] / 1e9:.2f}B params, prompt {result['prompt_tokens']}:"]
    for name, run in result["runs"].items():
        lines.append(
            f"  {name:<8} {run['tokens_per_s']:,.1f} tokens/s ({run['new_tokens_per_row']} new per row), "
            f"TTFT {run['time_to_first_token_s'] * 1000:.0f} ms, peak {run['peak_gib']} GiB"
        )
    return lines


def summary_training(result: dict[str, Any]) -> list[str]:
    """Lines for the final table."""
    return [
        f"LoRA training, {result['base_weights']} weights + bf16 autocast, {result['batch']} x "
        f"{result['sequence']}: {result['tokens_per_s']:,.0f} tokens/s "
        f"({result['seconds_per_step']:.3f} s/step), "
        f"peak {result['peak_gib']} GiB, LoRA changed {result['lora_tensors_changed']}, "
        f"base unchanged {result['base_tensors_unchanged']}, loss {result['loss_first_last'][0]:.3f} -> "
        f"{result['loss_first_last'][1]:.3f}"
    ]
