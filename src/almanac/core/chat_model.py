"""The chat model: a local transformers causal LM with LoRA adapters chosen per call.

The model comes from a local folder prepared by core/model_cache.py (an embedded reader converted once from
its GGUF file, or a Hugging Face id downloaded once). Messages are encoded by core/chat_encoder.py, so no
message text (a retrieved document, a question, the history) can produce the template's control tokens.

Generation is greedy and serialised by one lock (one model in memory; the server queues in front of it).
A prompt that leaves no room for ``max_tokens`` inside the context window raises LimitError rather than being
truncated silently: cutting retrieved sources or the question would change the answer behind the user's back.

    chat = build_chat_model(Settings())  # core/chat_backend.py: this model, or a model server's
    chat.complete([ChatMessage("user", "What is the capital of France?")], 32).text  # '... is Paris.'
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from almanac.core.adapter_manifest import loadable_adapter
from almanac.core.chat_encoder import ChatEncoder
from almanac.core.compute_dtype import compute_dtype
from almanac.core.embedder import pick_device
from almanac.core.errors import ConfigError, InputError, LimitError, ModelError, NotFoundError
from almanac.core.types import ChatMessage, Completion

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class _StopOnEvents:
    """Stopping criterion for StoppingCriteriaList: stop every sequence once any event is set."""

    def __init__(self, events: Sequence[threading.Event | None]) -> None:
        self._events = [event for event in events if event is not None]

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        import torch

        done = any(event.is_set() for event in self._events)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class TransformersChatModel:
    """A local causal LM behind the ChatModel port, with peft LoRA adapters loaded by name at run time."""

    def __init__(
        self,
        model_dir: Path,
        *,
        identity: str,
        device: str = "auto",
        adapters_dir: Path | None = None,
        name: str = "almanac",
        context_tokens: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        start = time.perf_counter()
        self.name, self.identity, self.adapters_dir = name, identity, adapters_dir
        self.device = pick_device(device)
        dtype = compute_dtype(torch, self.device, model_dir)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot load chat model from {model_dir} ({exc}); point it at a model folder"
            ) from exc
        if not self.tokenizer.chat_template:
            raise ConfigError(
                f"the tokenizer in {model_dir} has no chat template; use an instruct/chat model"
            )
        module: torch.nn.Module = model  # typed as the base class: PreTrainedModel.to's @wraps hides `to`
        self.model: Any = module.to(self.device).eval()
        self._encoder = ChatEncoder(self.tokenizer)
        window = int(getattr(model.config, "max_position_embeddings", 0) or 0) or context_tokens or 2048
        self.context_tokens = min(window, context_tokens or window)
        eos = model.generation_config.eos_token_id
        self._eos = sorted({self.tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None})
        pad = self.tokenizer.pad_token_id
        self._pad = pad if pad is not None else self._eos[0]
        self._lock = threading.Lock()
        self._loaded: list[str] = []
        seconds = time.perf_counter() - start
        log.info("chat model loaded dir=%s device=%s seconds=%.2f", model_dir, self.device, seconds)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` without special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def adapters(self) -> list[str]:
        """Names of the adapters loaded so far, in load order."""
        return list(self._loaded)

    def complete(
        self, messages: Sequence[ChatMessage], max_tokens: int, adapter: str | None = None
    ) -> Completion:
        """Greedy reply; `adapter` is loaded on first use, None runs the base model."""
        inputs = self._encode(messages, max_tokens)
        self._ensure_adapter(adapter)
        try:
            output = self._generate(inputs, max_tokens, adapter, ())
        except RuntimeError as exc:
            raise ModelError(f"generation failed ({exc}); retry with fewer max_tokens") from exc
        prompt_tokens = int(inputs["input_ids"].shape[1])
        new = output[0, prompt_tokens:].tolist()
        stopped = bool(new) and new[-1] in self._eos
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        assert isinstance(text, str)  # one sequence decodes to one string
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(new),
            finish_reason="length" if len(new) >= max_tokens and not stopped else "stop",
        )

    def stream(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        adapter: str | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Reply in pieces. Checks run now; generation stops once `cancel` is set or the iterator closes."""
        inputs = self._encode(messages, max_tokens)
        self._ensure_adapter(adapter)
        return self._pieces(inputs, max_tokens, adapter, cancel)

    def _pieces(
        self, inputs: dict[str, Any], max_tokens: int, adapter: str | None, cancel: threading.Event | None
    ) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop, errors = threading.Event(), []

        def work() -> None:
            try:
                self._generate(inputs, max_tokens, adapter, (stop, cancel), streamer)
            except Exception as exc:  # surfaced to the reader below; end() unblocks it
                errors.append(exc)
                streamer.end()

        threading.Thread(target=work, name="almanac-generate", daemon=True).start()
        try:
            yield from (piece for piece in streamer if piece)
            if errors:
                error = errors[0]
                raise ModelError(f"generation failed ({error}); retry with fewer max_tokens") from error
        finally:
            stop.set()  # done, or the reader went away: the worker stops at its next token

    def _encode(self, messages: Sequence[ChatMessage], max_tokens: int) -> dict[str, Any]:
        if not messages:
            raise InputError("no messages given; send at least one user message")
        if max_tokens < 1:
            raise LimitError(f"max_tokens must be at least 1, not {max_tokens}")
        enc = self._encoder.encode(messages)
        used = int(enc["input_ids"].shape[1])
        if used + max_tokens > self.context_tokens:
            raise LimitError(
                f"the prompt takes {used} tokens and {max_tokens} more were asked for, over the model's "
                f"context of {self.context_tokens}; shorten the question, use a smaller top_k or max_tokens"
            )
        return {key: enc[key].to(self.device) for key in ("input_ids", "attention_mask")}

    def _generate(
        self,
        inputs: dict[str, Any],
        max_tokens: int,
        adapter: str | None,
        stops: Sequence[threading.Event | None],
        streamer: Any = None,
    ) -> torch.Tensor:
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        config = GenerationConfig(
            max_new_tokens=max_tokens, do_sample=False, eos_token_id=self._eos, pad_token_id=self._pad
        )
        criteria = StoppingCriteriaList([_StopOnEvents(stops)])
        with self._lock, self._adapter_scope(adapter), torch.inference_mode():
            output: torch.Tensor = self.model.generate(
                **inputs, generation_config=config, stopping_criteria=criteria, streamer=streamer
            )
        return output

    def _adapter_scope(self, adapter: str | None) -> AbstractContextManager[Any]:
        """Select the adapter for one call (caller holds the lock); None disables all adapters."""
        if adapter is not None:
            self.model.set_adapter(adapter, inference_mode=True)
            return nullcontext()
        return self.model.disable_adapter() if self._loaded else nullcontext()

    def _ensure_adapter(self, adapter: str | None) -> None:
        if adapter is not None and adapter not in self._loaded:
            self.load_adapter(adapter)

    def load_adapter(self, name: str) -> None:
        """Load ``adapters_dir/NAME`` (peft, safetensors) next to the others; a loaded name is a no-op."""
        if self.adapters_dir is None:
            raise NotFoundError(f"adapter {name!r} asked for, but no adapters folder is configured")
        folder = loadable_adapter(self.adapters_dir, name, self.identity)
        from peft import PeftModel

        with self._lock:
            if name in self._loaded:
                return
            try:
                if self._loaded:
                    self.model.load_adapter(str(folder), adapter_name=name)
                else:
                    self.model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name)
            except (OSError, ValueError, RuntimeError, KeyError) as exc:
                raise ModelError(f"cannot load adapter {name!r} from {folder} ({exc}); retrain it") from exc
            self._loaded.append(name)
        log.info("adapter loaded name=%s folder=%s", name, folder)
