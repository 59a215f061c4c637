import json

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from core.app_files import AppFiles
from core.errors import InvalidQuestionSet
from core.evaluation import (
    EvalSettings,
    EvaluationStore,
    Question,
    draft_questions,
    parse_question_set,
    run_evaluation,
)
from core.knowledge.ingest import Ingestion
from core.knowledge.sources import FolderInput, prepare
from core.knowledge.splitting import SplitterSettings
from core.rag.retrieval import Searcher


def test_csv_with_chinese_headers_and_jsonl_are_read():
    csv_data = "问题,出处,答案\nlmdeploy 支持哪些量化？,quant.md,AWQ\n,ignored.md,\n".encode("gbk")
    assert parse_question_set("set.csv", csv_data) == [Question("lmdeploy 支持哪些量化？", "quant.md", "AWQ")]
    jsonl = "\n".join(json.dumps(r) for r in [{"question": "How long?", "source": "pasta.md"}, {"question": "Q2"}])
    assert parse_question_set("set.jsonl", jsonl.encode()) == [Question("How long?", "pasta.md"), Question("Q2")]


@pytest.mark.parametrize("name, data", [("a.csv", b"x,y\n1,2\n"), ("a.jsonl", b"not json\n"), ("a.csv", b"\xff\x00")])
def test_unusable_question_sets_are_refused_with_the_reason(name, data):
    with pytest.raises(InvalidQuestionSet) as caught:
        parse_question_set(name, data)
    assert "cannot be used as a question set" in str(caught.value)


@pytest.fixture
def kb(bases, tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "quant.md").write_text("# 量化\n\nlmdeploy 支持 AWQ 4bit 权重量化。\n", encoding="utf-8")
    (root / "pasta.md").write_text("# Pasta\n\nBoil the pasta for ten minutes.\n")
    kb = bases.create("docs", "multilingual-e5-small-q4", SplitterSettings(300, 50))
    ready = prepare(bases, kb, FolderInput(root))
    Ingestion(bases, kb, ready.source, ready.root, max_file_bytes=10**6).run()
    return kb


def test_run_measures_recall_mrr_citations_and_answers(bases, kb):
    questions = [
        Question("lmdeploy 量化", "quant.md", "AWQ"),
        Question("pasta boil minutes", "pasta.md", "ten minutes"),
        Question("something unrelated", "missing.md", ""),
    ]
    llm = GenericFakeChatModel(messages=iter([AIMessage("AWQ [1]"), AIMessage("I do not know."), AIMessage("?")]))
    settings = EvalSettings(k=1, threshold=0.0, answers=True)  # the metrics, not the floor, are tested here
    run = run_evaluation(Searcher(bases), kb, questions, settings, llm, "mine")
    assert [r["hit"] for r in run.rows] == [True, True, False]
    assert run.metrics["recall_at_k"] == pytest.approx(2 / 3, abs=1e-3) and run.metrics["questions"] == 3
    assert run.rows[0]["cited"] == ["quant.md"] and run.rows[0]["cited_hit"] is True
    assert run.metrics["citation_hit_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert run.metrics["answer_containment"] == 0.5  # only questions with a reference answer count
    assert "retrieve_ms_p50" in run.metrics and "generate_ms_p50" in run.metrics


def test_drafted_questions_expect_their_own_file(bases, kb):
    llm = GenericFakeChatModel(messages=iter([AIMessage("What does lmdeploy quantize?\nextra"), AIMessage("Q?")]))
    drafted = draft_questions(llm, bases.records.chunks(kb.id), 2)
    assert {q.source for q in drafted} == {"quant.md", "pasta.md"}
    assert "What does lmdeploy quantize?" in {q.question for q in drafted}


def test_sets_and_runs_are_kept(tmp_path, bases, kb):
    store = EvaluationStore(tmp_path / "e", AppFiles(tmp_path))
    store.save_set("我的问题", [Question("q", "quant.md")])
    assert EvaluationStore(tmp_path / "e", AppFiles(tmp_path)).sets() == {"我的问题": [Question("q", "quant.md")]}
    run = run_evaluation(Searcher(bases), kb, [Question("lmdeploy", "quant.md")], EvalSettings(), None, "我的问题")
    store.save_run(run)
    assert [r.id for r in EvaluationStore(tmp_path / "e", AppFiles(tmp_path)).runs()] == [run.id]
    store.delete_run(run.id)
    assert store.runs() == []
