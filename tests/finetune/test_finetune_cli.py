"""The CLI end to end with fake services: generate -> train -> eval --save -> promote -> list -> rollback."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from almanac.cli import wiring
from almanac.cli.main import main
from almanac.core.adapter_manifest import WEIGHTS_FILE, AdapterManifest
from almanac.core.embedder import HashingEmbedder
from almanac.finetune import teacher
from almanac.finetune.records import read_records
from almanac.server.answering.adapter_policy import AdapterPolicy
from tests.fakes import ChatAnswerer, OracleChat, PassageTeacher
from tests.finetune.questions import GOLD, TEACHER_DRAFTS, write_questions


class FakeCatalog:
    def __init__(self, chunks) -> None:
        self.chunks = chunks

    def iter_chunks(self, collection: str):
        return iter([c for c in self.chunks if c.collection == collection])


class FakeService:
    """Stands in for the server's AnswerService: its adapter policy applies when a request names none."""

    def __init__(self, retriever, chat, adapters: AdapterPolicy) -> None:
        self.chat, self.adapters = chat, adapters
        self._inner = ChatAnswerer(retriever, chat)

    def answer(self, ask):
        adapter = self.adapters.choose(ask.collection, ask.adapter)
        return self._inner.answer(ask.question, ask.collection, adapter)


def fake_answering(retriever, base_only: bool) -> SimpleNamespace:
    """The answering stack with fakes; without base_only the server's promoted adapter 'good' applies."""
    promoted = AdapterPolicy(lambda: "good", {"default": "good"})
    chat = OracleChat(GOLD)
    service = FakeService(retriever, chat, AdapterPolicy() if base_only else promoted)
    return SimpleNamespace(answerer=service, retriever=retriever, chat=chat)


@pytest.fixture
def home(tmp_path, monkeypatch, chunks, retriever) -> Path:
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(wiring, "open_catalog", lambda settings: FakeCatalog(chunks))
    monkeypatch.setattr(wiring, "build_retriever", lambda settings, catalog=None, embedder=None: retriever)
    monkeypatch.setattr(wiring, "build_embedder", lambda settings: HashingEmbedder(256))
    monkeypatch.setattr(
        wiring, "build_answering", lambda settings, base_only=False: fake_answering(retriever, base_only)
    )
    monkeypatch.setattr(teacher, "build_teacher", lambda *args: PassageTeacher(TEACHER_DRAFTS))
    return tmp_path / "home"


def test_generate_writes_a_curated_split_dataset(home, tmp_path, capsys):
    out = tmp_path / "ds"
    args = [
        "finetune",
        "generate",
        "--out",
        str(out),
        "--refusal-fraction",
        "1",
        "--sycophancy-fraction",
        "1",
    ]
    assert main([*args, "--top-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert "dropped: round_trip" in printed and str(out) in printed
    report = json.loads((out / "report.json").read_text())
    assert report["generated"] == report["kept"] + sum(report["dropped"].values())
    splits = {name: read_records(out / f"{name}.jsonl") for name in ("train", "validation", "test")}
    assert sum(len(s) for s in splits.values()) == report["kept"] > 0
    documents = [{r.source for r in records} for records in splits.values()]
    assert not (documents[0] & documents[1] or documents[0] & documents[2] or documents[1] & documents[2])
    assert main([*args, "--top-k", "3"]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.usefixtures("one_torch_thread")
def test_train_from_the_cli(home, tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "ds"
    assert main(["finetune", "generate", "--out", str(out), "--top-k", "3"]) == 0
    args = ["finetune", "train", "--name", "cli", "--data", str(out), "--base-model", str(tiny_model_dir)]
    assert main([*args, "--max-steps", "1", "--device", "cpu", "--lr", "1e-3"]) == 0
    manifest = AdapterManifest.load(home / "adapters" / "cli")
    assert manifest.hyperparameters["learning_rate"] == 1e-3 and manifest.hyperparameters["max_steps"] == 1
    assert "written to" in capsys.readouterr().out
    assert main(["adapters", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["default"] is None and [a["name"] for a in listed["adapters"]] == ["cli"]


def test_eval_save_promote_list_rollback(home, tmp_path, chunks, capsys):
    questions = tmp_path / "qa.jsonl"
    write_questions(questions, chunks)
    folder = home / "adapters" / "good"
    AdapterManifest("good", "base/model", "2025-01-01T00:00:00Z").save(folder)
    (folder / WEIGHTS_FILE).write_bytes(b"")

    assert main(["adapters", "promote", "good"]) == 2
    assert "no stored evaluation" in capsys.readouterr().err
    assert main(["eval", str(questions), "--adapter", "good", "--save", "-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["metric", "base", "good", "change"]
    evaluation = AdapterManifest.load(folder).evaluation
    assert evaluation["score"] == 1.0 and evaluation["base_score"] == 0.0  # no default leaked into 'base'
    assert json.loads((tmp_path / "qa.eval-good.json").read_text())["summaries"]["good"]["score"] == 1.0

    assert main(["adapters", "promote", "good"]) == 0
    assert main(["adapters", "list"]) == 0
    assert "* good" in capsys.readouterr().out
    assert main(["adapters", "rollback"]) == 0
    assert "base model" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "backend", "expected"),
    [
        ({}, "transformers", 20 * 60.0),  # the model in this process on a CPU: bounded
        ({"teacher_minutes": 0.0}, "transformers", None),  # 0 lifts the bound
        ({"teacher_minutes": 5.0}, "openai", 300.0),
        ({"teacher_url": "http://127.0.0.1:8001/v1"}, "transformers", None),  # a model server: no bound
        ({}, "openai", None),
        ({"teacher_model": "smollm2"}, "openai", 20 * 60.0),  # a local model runs here whatever the backend
    ],
)
def test_the_auto_teachers_model_budget(tmp_path: Path, flags: dict, backend: str, expected: float | None):
    from almanac.cli.finetune_generate import teacher_budget_s
    from almanac.core.settings import Settings

    url = "http://127.0.0.1:8001/v1" if backend == "openai" else None
    settings = Settings(home=tmp_path, chat={"backend": backend, "device": "cpu", "base_url": url})
    args = SimpleNamespace(**{"teacher_minutes": None, "teacher_url": None, "teacher_model": None, **flags})
    assert teacher_budget_s(args, settings) == expected  # type: ignore[arg-type]
