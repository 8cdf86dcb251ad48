"""The generation baseline: `model.generate` called directly, in its own process, on the server's prompts.

    .venv/bin/python bench/serve_direct.py MODEL_DIR      # then JSON lines on stdin, one answer line each

Same converted SmolLM2 folder (core.chat_model.prepare_model_dir), float32 on CPU with as many torch threads
as the server uses (the cores this process may run on), the chat template with the generation prompt, greedy,
the same eos and pad tokens as TransformersChatModel. Input line: {"messages": [{"role", "content"}],
"max_new_tokens": N}; output line: {"prompt_tokens", "completion_tokens", "seconds", "text"}, where
`seconds` times the `model.generate` call alone (prefill + decode), the same work the server's `generation`
timing covers. The first output line is {"ready": true, ...} once the model is loaded and warmed up.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig


class DirectModel:
    """A bare transformers causal LM, greedy, configured like the server's TransformersChatModel."""

    def __init__(self, model_dir: str) -> None:
        if "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))  # what the server does
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, local_files_only=True)
        self.model = model.eval()
        eos = model.generation_config.eos_token_id
        self.eos = sorted({self.tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None})
        pad = self.tokenizer.pad_token_id
        self.pad = pad if pad is not None else self.eos[0]

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> dict[str, Any]:
        """Greedy completion of a chat, timed around `model.generate` only."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")
        config = GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=self.eos, pad_token_id=self.pad
        )
        with torch.inference_mode():
            started = time.perf_counter()
            output = self.model.generate(**enc, generation_config=config)
            seconds = time.perf_counter() - started
        prompt_tokens = int(enc["input_ids"].shape[1])
        new = output[0, prompt_tokens:].tolist()
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(new),
            "seconds": seconds,
            "text": self.tokenizer.decode(new, skip_special_tokens=True),
        }


def main(model_dir: str) -> int:
    """Serve generation requests over stdin/stdout, one JSON object per line."""
    model = DirectModel(model_dir)
    model.generate([{"role": "user", "content": "Say hello."}], 8)  # warm-up, like the server's first call
    print(json.dumps({"ready": True, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if line.strip():
            request = json.loads(line)
            print(json.dumps(model.generate(request["messages"], int(request["max_new_tokens"]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
