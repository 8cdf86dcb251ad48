"""API-call examples: questions over an allow-listed table with the correct call and answer, curated by
running every call; the training prompt offers the tools; an adapter trained on them calls at least
as well as the base on held-out questions (a tiny Llama built from a config)."""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from almanac.core.chat_model import TransformersChatModel
from almanac.core.lookup_tool import TableSpec, parse_call
from almanac.core.model_cache import model_identity
from almanac.core.prompt import NO_ANSWER, SYSTEM_PROMPT
from almanac.core.source_db import SourceDatabase
from almanac.finetune.records import read_records, write_records
from almanac.finetune.tool_call_examples import (
    ToolCallExamples,
    append_examples,
    grade_calls,
)
from almanac.finetune.training import TrainingConfig, train_adapter
from almanac.finetune.training_set import conversation, conversations
from tests.finetune.tiny_llama import save_tiny_llama

pytestmark = pytest.mark.usefixtures("one_torch_thread")
COLOURS = ("red", "green", "blue", "amber")
SPEC = TableSpec("shop.bikes", ("id", "name", "colour", "weight_kg"))


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolCallExamples]:
    path = tmp_path_factory.mktemp("shop") / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE bikes (id INTEGER PRIMARY KEY, name TEXT, colour TEXT, weight_kg REAL)")
        rows = [(i, f"Bike {i}", COLOURS[i % 4], 8.0 + i / 2) for i in range(1, 13)]
        conn.executemany("INSERT INTO bikes VALUES (?, ?, ?, ?)", rows)
    db = SourceDatabase("shop", f"sqlite:///{path}")
    yield ToolCallExamples(db, [SPEC])
    db.close()


def test_generated_calls_are_run_and_only_working_ones_kept(
    examples: ToolCallExamples, tmp_path: Path
) -> None:
    generated = examples.generate(per_table=100, rng=random.Random(0))
    by_question = {e.question: e for e in generated}
    assert by_question["How many bikes have colour amber?"].answer == "3"
    assert by_question["What is the highest weight_kg among the bikes?"].answer == "14.0"
    assert by_question["Which bikes have colour red?"].answer == "Bike 4, Bike 8, Bike 12"
    wrong = replace(by_question["How many bikes have colour red?"], question="Miscounted?", answer="4")
    broken = replace(generated[0], question="Broken?", call=generated[0].call.model_copy(deep=True))
    broken.call.arguments.table = "shop.nope"
    records = examples.curate([*generated, wrong, broken])
    assert len(records) == len(generated)  # every generated call works; the wrong and broken ones do not
    write_records(tmp_path / "t.jsonl", records)
    [again, *_] = read_records(tmp_path / "t.jsonl")
    assert again == records[0] and again.kind == "tool_call" and parse_call(again.target) is not None
    row = conversation(again)
    assert "<tools>" in row["prompt"][0]["content"] and SYSTEM_PROMPT in row["prompt"][0]["content"]
    assert row["completion"][0]["content"] == again.target


def test_a_call_record_also_trains_reading_its_result(examples: ToolCallExamples) -> None:
    generated = examples.generate(per_table=100, rng=random.Random(0))
    [amber] = examples.curate([e for e in generated if e.question == "How many bikes have colour amber?"])
    call, answer = conversations(amber)
    assert call == conversation(amber)
    assert [m["role"] for m in answer["prompt"][-2:]] == ["assistant", "tool"]
    assert answer["prompt"][-2]["content"] == amber.target  # the call, then what the server shows of it
    shown = json.loads(answer["prompt"][-1]["content"].split("\n", 1)[1])
    assert (shown["name"], shown["ok"], shown["value"], shown["table"]) == ("count", True, 3, "bikes")
    assert answer["completion"][0]["content"].endswith("Answer: 3")
    [which] = examples.curate([e for e in generated if e.question == "Which bikes have colour red?"])
    rows = json.loads(which.tool_result)["rows"]
    assert [r["name"] for r in rows] == ["Bike 4", "Bike 8", "Bike 12"]
    assert all(set(r) <= set(SPEC.columns) for r in rows)  # only the allow-listed columns are shown


def test_append_examples_adds_to_train_and_validation(examples: ToolCallExamples, tmp_path: Path) -> None:
    folder = {name: tmp_path / f"{name}.jsonl" for name in ("train", "validation")}
    write_records(folder["train"], examples.curate(examples.generate(per_table=1, rng=random.Random(2))))
    url = str(examples.db.engine.url)
    added = append_examples(folder, {"shop": url}, ["shop.bikes:id,name,colour", "other.t"], per_table=10)
    train, held = read_records(folder["train"]), read_records(folder["validation"])
    assert added == 10 and len(train) == 1 + 8 and len(held) == 2
    assert all("weight_kg" not in r.tools for r in train[1:])  # only the allow-listed columns are offered


def test_adapter_trained_on_api_calls_calls_at_least_as_well_as_the_base(
    examples: ToolCallExamples, tmp_path: Path
) -> None:
    records = examples.curate(examples.generate(per_table=100, rng=random.Random(0)))
    held = [r for r in records if "amber" in r.question or "lowest id" in r.question]
    train = [r for r in records if r not in held]
    assert len(held) >= 3 and len(train) >= 8
    rows = [row for r in records for row in conversations(r)]
    texts = [m["content"] for row in rows for m in row["prompt"] + row["completion"]] + [NO_ANSWER]
    # wider than conftest's model, and logits wide enough for LoRA to steer (0.02 leaves them near uniform)
    model_dir = save_tiny_llama(
        tmp_path / "tiny", texts * 2, vocab_size=1500, hidden_size=64, initializer_range=0.3
    )
    write_records(tmp_path / "train.jsonl", train)
    write_records(tmp_path / "validation.jsonl", held)
    cfg = TrainingConfig(
        name="tools",
        base_model=str(model_dir),
        max_steps=150,
        batch_size=4,
        learning_rate=1e-2,
        device="cpu",
        seed=1,
    )
    train_adapter(
        cfg,
        tmp_path / "train.jsonl",
        tmp_path / "validation.jsonl",
        models_dir=tmp_path / "models",
        adapters_dir=tmp_path / "adapters",
        progress=False,
    )
    chat = TransformersChatModel(
        model_dir, identity=model_identity(str(model_dir)), device="cpu", adapters_dir=tmp_path / "adapters"
    )
    base, tuned = grade_calls(chat, held), grade_calls(chat, held, adapter="tools")
    assert tuned.exact >= base.exact  # (a tiny model from scratch rarely copies an unseen value)
    assert tuned.formed > base.formed  # the adapter learned to call the tools at all
    assert tuned.right_tool > base.right_tool  # and to pick the tool the question needs
