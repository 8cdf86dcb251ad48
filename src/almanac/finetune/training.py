"""LoRA fine-tuning with peft + trl's SFTTrainer. `train_adapter` reads top to bottom:
build config -> trainer -> train -> save -> manifest.

Checkpoints go to ``ADAPTERS_DIR/.NAME.work``; a rerun with the same data and hyper-parameters resumes
from the last one (different ones start over). The finished adapter is written into a temporary folder and
renamed to ``ADAPTERS_DIR/NAME`` only when whole, so a killed run never leaves an adapter that looks
complete. The same seed, data and machine give the same weights.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from almanac.core.adapter_manifest import AdapterManifest, adapter_folder
from almanac.core.embedder import pick_device
from almanac.core.errors import InputError
from almanac.core.model_cache import model_identity, prepare_model_dir
from almanac.core.settings import SMOLLM2
from almanac.finetune.adapter_publisher import publish_adapter, work_folder
from almanac.finetune.base_model import load_base_model
from almanac.finetune.training_set import TrainingSet

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """What to train and how; everything but `name` and `device` is recorded in the manifest."""

    name: str
    base_model: str = SMOLLM2
    epochs: float = 2.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 2e-4
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0  # masks on every LoRA input cost 3-8% of a CPU step (bench/finetune_step.py)
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 2048  # tokens; longer examples are cut at the end
    save_steps: int = 50
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        positive = (
            self.learning_rate,
            self.lora_r,
            self.lora_alpha,
            self.batch_size,
            self.grad_accum,
            self.max_length,
            self.save_steps,
        )
        if min(positive) <= 0 or not 0 <= self.lora_dropout < 1 or (self.epochs <= 0 and self.max_steps <= 0):
            raise InputError("training settings must be positive (dropout in [0, 1)); check the flags")

    def hyperparameters(self) -> dict[str, Any]:
        """The settings that shape the weights."""
        return {k: v for k, v in asdict(self).items() if k not in ("name", "device")}


@dataclass(frozen=True, slots=True)
class TrainingResult:
    """The published adapter and how the run went."""

    manifest: AdapterManifest
    folder: Path
    train_loss: float
    tokens_per_second: float
    runtime_s: float

    @classmethod
    def of(cls, manifest: AdapterManifest, folder: Path, output: Any, tokens: int) -> TrainingResult:
        """From trl's TrainOutput and the (non-padding) tokens this session trained on; logs it."""
        runtime = float(output.metrics.get("train_runtime", 0.0))
        result = cls(manifest, folder, float(output.training_loss), tokens / max(runtime, 1e-9), runtime)
        log.info(
            "adapter trained name=%s loss=%.4f validation_loss=%s tokens_per_s=%.0f seconds=%.1f",
            manifest.name,
            result.train_loss,
            manifest.validation_loss,
            result.tokens_per_second,
            runtime,
        )
        return result


def lora_config(config: TrainingConfig) -> Any:
    """LoRA on every linear layer of the decoder."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def sft_config(config: TrainingConfig, work: Path, device: str, progress: bool) -> Any:
    """trl settings: loss on the completion only, bf16 on a GPU that has it, fp32 on CPU."""
    import torch
    from trl.trainer.sft_config import SFTConfig

    on_gpu = device.startswith("cuda")
    return SFTConfig(
        output_dir=str(work),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        max_length=config.max_length,
        completion_only_loss=True,
        activation_checkpointing=False,  # small models: speed over memory
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        use_cpu=not on_gpu,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        eval_strategy="no",
        logging_steps=10,
        include_num_input_tokens_seen="non_padding",  # for an honest tokens/s
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=not progress,
    )


def train_adapter(
    config: TrainingConfig,
    train_path: Path,
    validation_path: Path | None = None,
    *,
    models_dir: Path,
    adapters_dir: Path,
    force: bool = False,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
) -> TrainingResult:
    """Train a LoRA adapter on a JSONL of QA records and publish it as ``adapters_dir/NAME``."""
    from transformers.trainer_utils import get_last_checkpoint
    from trl.trainer.sft_trainer import SFTTrainer

    target = adapter_folder(adapters_dir, config.name)
    if target.exists() and not force:
        raise InputError(
            f"adapter {config.name!r} already exists in {adapters_dir}; pick another name or --force"
        )
    train_set = TrainingSet.load(train_path)
    validation = TrainingSet.load(validation_path) if validation_path else None
    device = pick_device(config.device)
    model, tokenizer = load_base_model(prepare_model_dir(config.base_model, models_dir), device)
    work = work_folder(adapters_dir, config.name, {**config.hyperparameters(), "data": train_set.sha256})

    trainer = SFTTrainer(
        model=model,
        args=sft_config(config, work, device, progress),
        train_dataset=train_set.to_dataset(),
        eval_dataset=validation.to_dataset() if validation else None,
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=list(callbacks),
    )
    checkpoint = get_last_checkpoint(str(work))
    tokens_before = _tokens_seen(checkpoint)
    with completion_only_scoring(device):
        output = trainer.train(resume_from_checkpoint=checkpoint)
        validation_loss = float(trainer.evaluate()["eval_loss"]) if validation else None

    manifest = AdapterManifest(
        name=config.name,
        base_model=model_identity(config.base_model),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        dataset_sha256=train_set.sha256,
        hyperparameters=config.hyperparameters(),
        validation_loss=validation_loss,
    )
    publish_adapter(trainer.model, manifest, target, replace=force)
    shutil.rmtree(work, ignore_errors=True)
    return TrainingResult.of(manifest, target, output, trainer.state.num_input_tokens_seen - tokens_before)


@contextmanager
def completion_only_scoring(device: str) -> Iterator[None]:
    """Let trl's fused LM head score only the completion tokens on CPU, as it already does on CUDA.

    trl projects through the LM head, in tiles, only the positions that carry a label when its Triton kernel
    runs; on any other device it scores every position (to keep tile shapes fixed for compilers that would
    recompile). On an eager CPU nothing recompiles, and a prompt of ~600 tokens with a ~40-token answer
    then spends half of each step on a 49k-word head over positions whose loss is masked. The loss is the
    same either way (tests/finetune/test_training.py checks it); the step is about 1.9x faster. trl reads the
    switch from `trl.trainer.utils._use_triton`, so only that lookup is redirected, for this block only; a
    trl without it keeps its own behaviour.
    """
    import trl.trainer.utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if device != "cpu" or original is None:
        yield
        return
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        trl_utils._use_triton = original  # type: ignore[attr-defined]


def _tokens_seen(checkpoint: str | None) -> int:
    """Tokens a resumed run had already seen (trainer_state.json of its checkpoint)."""
    if checkpoint is None:
        return 0
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    return int(state.get("num_input_tokens_seen", 0))
