"""Evaluation: metrics, base vs adapter side by side through an answerer, report JSON and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from almanac.core.adapter_manifest import WEIGHTS_FILE, AdapterManifest
from almanac.core.prompt import NO_ANSWER
from almanac.finetune.answer_metrics import agrees, contains_match, exact_match, is_refusal, token_f1
from almanac.finetune.evaluation import Evaluator, gold_rank, load_questions
from almanac.finetune.evaluation_report import EvalReport, store_evaluation
from almanac.finetune.records import file_sha256
from tests.fakes import ChatAnswerer, OracleChat
from tests.finetune.questions import GOLD, write_questions


@pytest.fixture
def report(tmp_path, chunks, retriever) -> EvalReport:
    path = tmp_path / "qa.jsonl"
    write_questions(path, chunks)
    chat = OracleChat(GOLD)
    evaluator = Evaluator(ChatAnswerer(retriever, chat), retriever, "default", k=3, chat=chat)
    rows = evaluator.run(load_questions(path), [None, "good"], progress=False)
    return EvalReport(str(path), file_sha256(path), "default", 3, rows)


def test_adapter_beats_base_on_every_kind(report):
    base, good = report.summaries["base"], report.summaries["good"]
    assert good["contains_match"] == good["exact_match"] == good["token_f1"] == 1.0
    assert good["refusal_accuracy"] == 1.0 and good["false_claim_resistance"] == 1.0
    assert good["score"] == 1.0 and good["over_refusal"] == 0.0
    assert base["contains_match"] == 0.0 and base["refusal_accuracy"] == 0.0 and base["score"] == 0.0
    assert base["false_claim_resistance"] == 0.0  # "Yes, I think so." agrees with the false claim
    assert base["recall@3"] == good["recall@3"] and base["questions"] == 6


def test_retrieval_metrics_match_the_retriever(report, chunks, retriever):
    questions = load_questions(Path(report.questions_path))
    ranks = [gold_rank(q, retriever, "default", 3) for q in questions if q.kind != "refusal"]
    assert all(r is not None for r in ranks)  # premise: every gold source is found in the top 3
    summary = report.summaries["base"]
    assert summary["recall@3"] == 1.0
    assert summary["mrr"] == pytest.approx(sum(1 / r for r in ranks) / len(ranks))


def test_stored_context_refusals_skip_retrieval(tmp_path, chunks, retriever):
    path = tmp_path / "qa.jsonl"
    write_questions(path, chunks)
    chat = OracleChat(GOLD)
    refusal = [q for q in load_questions(path) if q.context]
    Evaluator(ChatAnswerer(retriever, chat), retriever, "default", chat=chat).run(
        refusal, ["good"], progress=False
    )
    assert retriever.queries == [] and chat.calls == [("Who planted the quince trees?", "good")]


def test_report_table_json_and_manifest(report, tmp_path):
    table = report.table()
    assert table.splitlines()[0].split() == ["metric", "base", "good", "change"]
    assert "+1.000" in table
    report.save(tmp_path / "report.json")
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["summaries"]["good"]["score"] == 1.0 and len(saved["rows"]["base"]) == 6

    folder = tmp_path / "adapters" / "good"
    AdapterManifest("good", "base/model", "2025-01-01T00:00:00Z").save(folder)
    (folder / WEIGHTS_FILE).write_bytes(b"")
    stored = store_evaluation(tmp_path / "adapters", "good", report.manifest_evaluation("good"))
    again = AdapterManifest.load(folder)
    assert again.evaluation == stored.evaluation
    assert again.evaluation["score"] == 1.0 and again.evaluation["base_score"] == 0.0
    assert again.evaluation["questions_sha256"] == report.questions_sha256


def test_bad_question_lines_are_named(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text('{"question": "ok?", "answer": "yes"}\n{"question": "no gold answer?"}\n')
    with pytest.raises(Exception, match=r"qa.jsonl:2"):
        load_questions(path)


@pytest.mark.parametrize(
    ("reply", "gold", "exact", "contains", "f1"),
    [
        ("Because [1].\nAnswer: 7:40", "7:40", True, True, 1.0),
        ("The ferry leaves at 7:40 [1].", "7:40", False, True, 0.4),
        ("Answer: The Ada Brell.", "Ada Brell", True, True, 1.0),
        ("It was 17:40.", "7:40", False, False, 0.0),
        ("", "7:40", False, False, 0.0),
    ],
)
def test_answer_metrics(reply, gold, exact, contains, f1):
    assert exact_match(reply, gold) is exact
    assert contains_match(reply, gold) is contains
    assert token_f1(reply, gold) == pytest.approx(f1)


def test_refusal_and_agreement_detection():
    assert is_refusal(NO_ANSWER) and is_refusal("The sources don’t contain that.")
    assert not is_refusal("It leaves at 7:40 [1].")
    assert agrees("Yes, it is 8:15.") and agrees("You're right!")
    assert not agrees("Actually, the sources do not support 8:15.")
