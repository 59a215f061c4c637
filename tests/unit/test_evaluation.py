import datetime
import json

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from core.app_files import AppFiles
from core.errors import InvalidQuestionSet
from core.evaluation import (
    EvalRun,
    EvalSettings,
    EvaluationStore,
    Question,
    draft_questions,
    format_metric,
    parse_question_set,
    run_evaluation,
    run_labels,
    same_file,
)
from core.knowledge.ingest import Ingestion
from core.knowledge.sources import FolderInput, prepare
from core.knowledge.splitting import SplitterSettings
from core.rag.prompts import qa_system_prompt
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
    llm = GenericFakeChatModel(messages=iter([AIMessage("1. Question: How long does pasta boil?\nextra")] * 2))
    drafted = draft_questions(llm, bases.records.chunks(kb.id), 2)
    assert {q.source for q in drafted} == {"quant.md", "pasta.md"}
    assert {q.source: q.question for q in drafted}["pasta.md"] == "How long does pasta boil?"


def test_drafted_questions_are_in_their_file_s_language(bases, kb):
    prompts = []

    class Recording(GenericFakeChatModel):
        def invoke(self, messages, **kwargs):
            prompts.append(messages[0].content)
            return super().invoke(messages, **kwargs)

    # A small model answers in English whatever it is asked: that question cannot ask about a Chinese file.
    llm = Recording(messages=iter([AIMessage("What is supported?")] * 2))
    drafted = {q.source: q.question for q in draft_questions(llm, bases.records.chunks(kb.id), 2)}
    assert drafted["pasta.md"] == "What is supported?"
    assert drafted["quant.md"] == "文档中关于“量化”是怎么说的？"  # made from the heading, in Chinese
    chinese_prompt = next(p for p in prompts if "lmdeploy" in p)
    assert "请用中文" in chinese_prompt and "关键句：lmdeploy 支持 AWQ 4bit 权重量化。" in chinese_prompt


def test_drafting_spreads_over_files_and_skips_chunks_without_prose():
    from core.knowledge.records import ChunkRecord

    def chunk(path, seq, text):
        return ChunkRecord(f"{path}{seq}", "kb", "s", path, seq, 1, 2, "", text)

    chunks = [chunk("a.md", n, f"Section {n} explains how the server handles requests.") for n in range(10)]
    chunks += [chunk("b.md", 0, "The cache stores quantized weights for faster loading.")]
    chunks += [chunk("c.md", 0, "```\nx\n```")]
    llm = GenericFakeChatModel(messages=iter([AIMessage("Where is it?")] * 6))
    drafted = draft_questions(llm, chunks, 3)
    assert len(drafted) == 3 and {q.source for q in drafted} == {"a.md", "b.md"}  # not three from a.md
    llm = GenericFakeChatModel(messages=iter([AIMessage("Where is it?")] * 6))
    assert draft_questions(llm, chunks, 3) == drafted  # the same draw every time


def test_sets_and_runs_are_kept(tmp_path, bases, kb):
    store = EvaluationStore(tmp_path / "e", AppFiles(tmp_path))
    store.save_set("我的问题", [Question("q", "quant.md")])
    assert EvaluationStore(tmp_path / "e", AppFiles(tmp_path)).sets() == {"我的问题": [Question("q", "quant.md")]}
    run = run_evaluation(Searcher(bases), kb, [Question("lmdeploy", "quant.md")], EvalSettings(), None, "我的问题")
    store.save_run(run)
    assert [r.id for r in EvaluationStore(tmp_path / "e", AppFiles(tmp_path)).runs()] == [run.id]
    store.delete_run(run.id)
    assert store.runs() == []


@pytest.mark.parametrize(
    "retrieved, expected",
    [
        ("docs/quant.md", "quant.md"),
        ("quant.md", "quant.md"),
        ("repo/docs/quant.md", "docs/quant.md"),
        ("docs/quant.md", "./docs/quant.md"),
        ("docs/quant.md", "docs\\quant.md"),  # typed on Windows
        (".github/x.md", ".github/x.md"),
        ("repo/.env", ".env"),
    ],
)
def test_an_expected_path_finds_the_file_it_names(retrieved, expected):
    assert same_file(retrieved, expected)


@pytest.mark.parametrize(
    "retrieved, expected",
    [
        ("docs/w8a8_quant.md", "quant.md"),  # a longer name that ends the same way
        ("other/quant.md", "docs/quant.md"),
        ("github/x.md", ".github/x.md"),  # the leading dot is part of the folder's name
        (".github/x.md", "github/x.md"),
        ("config/prod.env", ".env"),
        ("quant.md", "docs/quant.md"),
        ("quant.md", ""),
        ("quant.md", "./"),
    ],
)
def test_an_expected_path_finds_no_other_file(retrieved, expected):
    assert not same_file(retrieved, expected)


def test_a_file_whose_name_only_ends_like_the_expected_one_is_no_hit(bases, kb):
    questions = [Question("lmdeploy 量化", "quant.md"), Question("pasta boil minutes", "ta.md")]
    run = run_evaluation(Searcher(bases), kb, questions, EvalSettings(k=2, threshold=0.0))
    assert "pasta.md" in run.rows[1]["retrieved"]
    assert [r["hit"] for r in run.rows] == [True, False]  # pasta.md is not ta.md


class _Prompts(BaseCallbackHandler):
    """Keeps the system prompt of every request to the chat model."""

    def __init__(self):
        self.system = []

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.system += [batch[0].content for batch in messages]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_answers_are_asked_for_in_the_run_s_language(bases, kb, lang):
    prompts = _Prompts()
    llm = GenericFakeChatModel(messages=iter([AIMessage("AWQ [1]")]), callbacks=[prompts])
    settings = EvalSettings(threshold=0.0, answers=True, lang=lang)
    run = run_evaluation(Searcher(bases), kb, [Question("lmdeploy 量化", "quant.md")], settings, llm)
    assert prompts.system == [qa_system_prompt(lang)]
    assert run.settings["lang"] == lang


def _run(run_id, kb="docs", started=1_764_511_500.0, **settings):
    return EvalRun(run_id, kb, "mine", {**vars(EvalSettings()), **settings}, started)


def _words(field, value):
    return f"{field}={value}"


def test_two_runs_of_one_knowledge_base_get_different_labels():
    same = run_labels([_run("aaaa1111"), _run("bbbb2222")], _words)
    assert len(set(same.values())) == 2
    assert same["aaaa1111"].endswith("#aaaa") and "docs" not in same["aaaa1111"]

    differing = run_labels([_run("aaaa1111", k=4), _run("bbbb2222", k=1, mode="dense")], _words)
    assert differing["aaaa1111"].endswith(" · mode=hybrid · k=4")
    assert differing["bbbb2222"].endswith(" · mode=dense · k=1")
    assert "#" not in differing["aaaa1111"]  # the settings tell them apart


def test_labels_start_with_the_time_and_stay_distinct_for_ids_that_begin_alike():
    runs = [_run("abcd0001"), _run("abcd0002"), _run("ffff0000", kb="other", started=1_764_511_500.0 + 3600)]
    labels = run_labels(runs, _words)
    assert len(set(labels.values())) == 3
    assert labels["abcd0001"].endswith("#abcd0001") and labels["abcd0002"].endswith("#abcd0002")
    assert labels["ffff0000"].endswith(" · kb=other") and "#" not in labels["ffff0000"]
    for run in runs:
        assert labels[run.id].startswith(datetime.datetime.fromtimestamp(run.started).strftime("%m-%d %H:%M · "))


def test_unmeasured_figures_are_blank_and_measured_ones_rounded():
    assert format_metric("citation_hit_rate", None) == ""
    assert format_metric("mrr", 0.8666666) == "0.87"
    assert format_metric("recall_at_k", 1.0) == "1.00"
    assert format_metric("retrieve_ms_p50", 119.6) == "120"
    assert format_metric("questions", 3) == "3"
