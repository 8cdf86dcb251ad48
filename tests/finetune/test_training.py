"""LoRA training on a tiny Llama built from a config: weights, manifest, reload, resume, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from almanac.core.adapter_manifest import AdapterManifest, list_adapters
from almanac.core.adapter_registry import AdapterRegistry
from almanac.core.chat_model import TransformersChatModel
from almanac.core.errors import AdapterMismatchError, InputError, ModelError
from almanac.core.model_cache import model_identity
from almanac.core.prompt import SYSTEM_PROMPT, build_answer_messages
from almanac.core.settings import Settings
from almanac.finetune.generation import GenerationConfig, Generator
from almanac.finetune.question_writer import QuestionWriter
from almanac.finetune.records import file_sha256, read_records, write_records
from almanac.finetune.training import TrainingConfig, train_adapter
from tests.fakes import HashingRetriever, PassageTeacher
from tests.finetune.corpus import corpus
from tests.finetune.questions import TEACHER_DRAFTS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """train.jsonl (every generated record) and validation.jsonl (the row lookups)."""
    chunks = corpus()
    config = GenerationConfig(refusal_fraction=1.0, sycophancy_fraction=1.0)
    records = (
        Generator(QuestionWriter(PassageTeacher(TEACHER_DRAFTS)), HashingRetriever(chunks), config)
        .run(chunks, "default", progress=False)
        .records
    )
    folder = tmp_path_factory.mktemp("data")
    write_records(folder / "train.jsonl", records)
    write_records(folder / "validation.jsonl", [r for r in records if r.kind == "row"])
    return folder / "train.jsonl", folder / "validation.jsonl"


def config(model_dir: Path, name: str) -> TrainingConfig:
    return TrainingConfig(
        name=name,
        base_model=str(model_dir),
        max_steps=4,
        save_steps=2,
        batch_size=4,
        learning_rate=5e-2,
        device="cpu",
        seed=1,
    )


def train(cfg, data, adapters_dir, tmp_path, **kwargs):
    return train_adapter(
        cfg,
        data[0],
        data[1],
        models_dir=tmp_path / "models",
        adapters_dir=adapters_dir,
        progress=False,
        **kwargs,
    )


class Snapshot(TrainerCallback):
    """Copies every parameter when training starts and ends."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {k: v.detach().clone() for k, v in model.named_parameters()}

    def on_train_end(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        self.after = {k: v.detach().clone() for k, v in model.named_parameters()}
        self.examples = [train_dataloader.dataset[i] for i in range(3)]
        self.tokenizer = kwargs["processing_class"]


class Interrupt(TrainerCallback):
    """Kills the run (as a crash would) once `at` steps are done."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt


class Steps(TrainerCallback):
    """Records which optimizer steps ran."""

    def __init__(self) -> None:
        self.done: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.done.append(state.global_step)


@pytest.fixture(scope="module")
def trained(tiny_model_dir, data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    snapshot = Snapshot()
    result = train(config(tiny_model_dir, "straight"), data, tmp / "adapters", tmp, callbacks=[snapshot])
    return result, snapshot, tmp / "adapters"


def test_training_moves_lora_weights_and_not_base_weights(trained):
    _, snapshot, _ = trained
    lora = [k for k in snapshot.before if "lora_" in k]
    base = [k for k in snapshot.before if "lora_" not in k]
    assert lora and base
    assert any(not torch.equal(snapshot.before[k], snapshot.after[k]) for k in lora)
    assert all(torch.equal(snapshot.before[k], snapshot.after[k]) for k in base)


def test_loss_falls_on_the_completion_only_after_the_server_prompt(trained, data):
    _, snapshot, _ = trained
    records = read_records(data[0])
    decode = snapshot.tokenizer.decode
    for example, record in zip(snapshot.examples, records, strict=False):
        ids, labels = example["input_ids"], example["labels"]
        first = next(i for i, label in enumerate(labels) if label != -100)
        assert all(label == -100 for label in labels[:first]) and labels[first:] == ids[first:]
        prompt = build_answer_messages(record.question, record.sources())
        assert prompt[1].content in decode(ids[:first]) and SYSTEM_PROMPT in decode(ids[:first])
        assert decode(ids[first:], skip_special_tokens=True).strip() == record.target


def test_adapter_folder_holds_safetensors_and_manifest(trained, tiny_model_dir, data):
    result, _, adapters_dir = trained
    folder = adapters_dir / "straight"
    assert result.folder == folder and result.tokens_per_second > 0 and math.isfinite(result.train_loss)
    weights = load_file(folder / "adapter_model.safetensors")
    assert weights and all("lora_" in key for key in weights)
    assert json.loads((folder / "adapter_config.json").read_text())["r"] == 16
    manifest = AdapterManifest.load(folder)
    assert manifest.complete and manifest.base_model == model_identity(str(tiny_model_dir))
    assert manifest.dataset_sha256 == file_sha256(data[0])
    assert manifest.hyperparameters["learning_rate"] == 5e-2 and manifest.hyperparameters["max_steps"] == 4
    assert manifest.validation_loss is not None and math.isfinite(manifest.validation_loss)
    assert [m.name for m in list_adapters(adapters_dir)] == ["straight"]
    assert sorted(p.name for p in adapters_dir.iterdir()) == ["straight"]  # no work or temporary folder left


def test_saved_adapter_reloads_and_changes_the_answer(trained, tiny_model_dir):
    _, _, adapters_dir = trained
    chat = TransformersChatModel(
        tiny_model_dir, identity=model_identity(str(tiny_model_dir)), device="cpu", adapters_dir=adapters_dir
    )
    messages = build_answer_messages("Who planted the Vellmont quince trees?", [("orchard.md", "Ada Brell.")])
    base = chat.complete(messages, 16).text
    tuned = chat.complete(messages, 16, adapter="straight").text
    assert chat.adapters() == ["straight"]
    assert tuned != base
    assert chat.complete(messages, 16).text == base  # the base model is still there without the adapter
    other = TransformersChatModel(
        tiny_model_dir, identity="someone/else", device="cpu", adapters_dir=adapters_dir
    )
    with pytest.raises(AdapterMismatchError, match="trained on"):
        other.load_adapter("straight")


def test_killed_run_leaves_no_adapter_and_resumes_to_the_same_weights(
    trained, tiny_model_dir, data, tmp_path
):
    adapters_dir = tmp_path / "adapters"
    cfg = config(tiny_model_dir, "straight")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, data, adapters_dir, tmp_path, callbacks=[Interrupt(at=3)])
    assert list_adapters(adapters_dir) == [] and not (adapters_dir / "straight").exists()
    assert (adapters_dir / ".straight.work" / "checkpoint-2").is_dir()

    steps = Steps()
    resumed = train(cfg, data, adapters_dir, tmp_path, callbacks=[steps])
    assert steps.done == [3, 4]  # resumed after the checkpoint at step 2
    assert (
        0
        < resumed.tokens_per_second * resumed.runtime_s
        < trained[0].tokens_per_second * trained[0].runtime_s
    )
    straight = load_file(trained[0].folder / "adapter_model.safetensors")
    again = load_file(resumed.folder / "adapter_model.safetensors")
    assert straight.keys() == again.keys()
    assert all(torch.allclose(straight[k], again[k], atol=1e-6) for k in straight)


def test_bad_inputs_fail_clearly_before_training(tiny_model_dir, data, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match="no records"):
        train_adapter(config(tiny_model_dir, "x"), empty, models_dir=tmp_path, adapters_dir=tmp_path / "a")
    broken = tmp_path / "broken.jsonl"
    broken.write_text(data[0].read_text().splitlines()[0] + "\n" + '{"kind": "qa", "question": "q"}\n')
    with pytest.raises(InputError, match=r"broken.jsonl:2"):
        train_adapter(config(tiny_model_dir, "x"), broken, models_dir=tmp_path, adapters_dir=tmp_path / "a")
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="cannot load the base model"):
        train_adapter(config(no_weights, "x"), data[0], models_dir=tmp_path, adapters_dir=tmp_path / "a")
    (tmp_path / "a" / "taken").mkdir(parents=True)
    with pytest.raises(InputError, match="--force"):
        train_adapter(
            config(tiny_model_dir, "taken"), data[0], models_dir=tmp_path, adapters_dir=tmp_path / "a"
        )
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["taken"]


def test_server_answers_with_the_promoted_adapter_without_a_restart(
    trained, tiny_model_dir, retriever, tmp_path
):
    from almanac.server.answering.adapter_policy import AdapterPolicy
    from almanac.server.answering.answer import Ask
    from almanac.server.answering.service import AnswerService
    from almanac.server.chat.lazy_chat_model import LazyChatModel
    from almanac.server.chat.model_queue import ModelQueue

    adapters_dir = tmp_path / "adapters"
    shutil.copytree(trained[2], adapters_dir)  # the registry writes here; the shared folder stays as is
    registry = AdapterRegistry(adapters_dir)
    chat = TransformersChatModel(
        tiny_model_dir, identity=model_identity(str(tiny_model_dir)), device="cpu", adapters_dir=adapters_dir
    )
    queue = ModelQueue(2)
    service = AnswerService(
        retriever.search,
        LazyChatModel.of(chat),
        queue,
        None,
        Settings(home=tmp_path / "home"),
        AdapterPolicy(registry.default),
    )
    ask = Ask("Who planted the Vellmont quince trees?", "default", max_tokens=16)
    try:
        before = service.answer(ask)
        registry.promote("straight", force=True)
        after = service.answer(ask)
        registry.rollback()
        again = service.answer(ask)
    finally:
        queue.close(wait=True)
    assert (before.adapter, after.adapter, again.adapter) == (None, "straight", None)
    assert after.text != before.text and again.text == before.text


def test_completion_only_scoring_gives_the_same_loss_and_gradients(tiny_model_dir):
    """On CPU only the labelled positions go through trl's LM head; loss and gradients must not change."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from almanac.finetune.training import completion_only_scoring

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    add_fused_lm_head(model)
    ids = torch.randint(0, model.config.vocab_size, (2, 24))
    labels = ids.clone()
    labels[:, :18] = -100  # a prompt whose loss is masked, then a short completion

    def loss_and_grad() -> tuple[float, torch.Tensor]:
        model.zero_grad()
        loss = model(input_ids=ids, labels=labels, fused_lm_head=True).loss
        loss.backward()
        return loss.detach().item(), model.get_output_embeddings().weight.grad.clone()

    import trl.trainer.utils as trl_utils

    full = loss_and_grad()
    with completion_only_scoring("cpu"):
        assert trl_utils._use_triton(torch.device("cpu"))  # the compact path is the one taken
        compact = loss_and_grad()
    assert not trl_utils._use_triton(torch.device("cpu"))  # and only inside the block
    assert compact[0] == pytest.approx(full[0], rel=1e-5)
    assert torch.allclose(compact[1], full[1], atol=1e-6)
    assert full[1].abs().sum() > 0
