"""The README's Python section, run as written against the real bundled embedding model: a
knowledge base as a retriever, and the Chat page's pipeline in one call."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

import core
from core import library
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.settings import get_settings

LMDEPLOY = {
    "quantization.md": (
        "# 量化\n\nLMDeploy 支持 AWQ 4bit 权重量化（W4A16），也支持 KV cache int8 和 int4 量化。\n\n"
        "## W4A16\n\n使用 `lmdeploy lite auto_awq` 命令即可把模型量化为 4bit 权重。\n"
    ),
    "serving.md": "# Serving\n\nTo serve a model, run `lmdeploy serve api_server`. It listens on port 23333.\n",
}


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    """A knowledge base "课程笔记" built with the default (multilingual) embedding model."""
    root = tmp_path_factory.mktemp("library")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("KBA_DATA_DIR", str(root / "data"))
    get_settings.cache_clear()
    library.get_services.cache_clear()
    docs = root / "docs"
    docs.mkdir()
    for name, text in LMDEPLOY.items():
        (docs / name).write_text(text, encoding="utf-8")
    services = core.get_services()
    kb = services.knowledge.create("课程笔记", services.settings.default_embedding, SplitterSettings(500, 150))
    assert services.jobs.wait(services.start_ingest(kb, FolderInput(docs)).id, timeout=300).status == "done"
    yield services
    library.get_services.cache_clear()
    get_settings.cache_clear()
    monkeypatch.undo()


def test_a_knowledge_base_is_a_retriever(notes):
    docs = core.open_retriever("课程笔记", k=4).invoke("lmdeploy 支持哪些量化方式？")
    assert docs[0].metadata["path"] == "quantization.md" and docs[0].metadata["start_line"] == 1
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] < 1


def test_a_quick_answer_quotes_the_sources_with_citations(notes):
    reply = core.ask("lmdeploy 支持哪些量化方式？", "课程笔记", mode="quick")
    assert not reply.refused and reply.shown.startswith("> ")
    assert "AWQ 4bit 权重量化" in reply.shown and "[1]" in reply.shown
    assert reply.sources[0].metadata["path"] == "quantization.md"


def test_an_off_topic_question_is_declined(notes):
    for question in ("What is the capital of France?", "红烧肉怎么做才好吃？"):
        reply = core.ask(question, "课程笔记", mode="quick")
        assert reply.refused and reply.text == "" and reply.sources == []


def test_a_written_answer_gets_its_citations_checked(notes):
    llm = GenericFakeChatModel(messages=iter([AIMessage("LMDeploy 支持 AWQ 4bit 权重量化 [5]。")]))
    reply = core.ask("lmdeploy 支持哪些量化方式？", "课程笔记", llm=llm)
    assert reply.text == "LMDeploy 支持 AWQ 4bit 权重量化 [5]。"
    assert "[5]" not in reply.shown and "*[1]*" in reply.shown
