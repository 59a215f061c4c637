"""A conversation's turns: saved before any work, kept when stopped, cited when finished."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from core import chat
from core.app_files import AppFiles
from core.conversations import Conversations, export_markdown
from core.knowledge.ingest import Ingestion
from core.knowledge.sources import FolderInput, prepare
from core.knowledge.splitting import SplitterSettings
from core.rag.answer import AnswerSettings, prepare_answer
from core.rag.retrieval import Searcher, SearchSettings

SEARCH = SearchSettings(k=2, threshold=0.0)


@pytest.fixture
def store(tmp_path):
    return Conversations(tmp_path / "conversations", AppFiles(tmp_path))


@pytest.fixture
def kb(bases, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "quant.md").write_text(
        "# 量化\n\nLMDeploy 支持 AWQ 4bit 权重量化。它也支持 KV cache int8 量化。\n", encoding="utf-8"
    )
    (docs / "pasta.md").write_text("# Pasta\n\nBoil the pasta for ten minutes, then add the tomato sauce.\n")
    kb = bases.create("docs", "multilingual-e5-small-q4", SplitterSettings(200, 20))
    ready = prepare(bases, kb, FolderInput(docs))
    Ingestion(bases, kb, ready.source, ready.root, 10**7, 8).run()
    return kb


def _llm(*replies):
    return GenericFakeChatModel(messages=iter([AIMessage(r) for r in replies]))


def test_the_question_is_saved_before_any_work(store):
    conversation = store.create()
    turn = chat.ask(store, conversation, "What is AWQ?")
    saved = store.get(conversation.id)
    assert [(m.role, m.kind) for m in saved.messages] == [("user", "generated"), ("assistant", "pending")]
    assert saved.title == "What is AWQ?" and turn.history == []


def test_a_stopped_stream_keeps_what_was_written_and_its_citations(store, bases, kb):
    conversation = store.create()
    turn = chat.ask(store, conversation, "LMDeploy 支持哪些量化？")
    answer = prepare_answer(turn.question, turn.history, _llm(), Searcher(bases), [kb], SEARCH, AnswerSettings())
    chat.settle(store, turn, answer)
    reply = chat.stream_reply(store, turn, answer, iter(["LMDeploy 支持 AWQ 4bit 权重量化 [1]。", "It also ", "never"]))
    next(reply), next(reply)
    reply.close()  # what Streamlit does to the stream when the user presses Stop
    saved = store.get(conversation.id).messages[1]
    assert saved.content == "LMDeploy 支持 AWQ 4bit 权重量化 [1]。It also " and saved.stopped
    assert saved.sources[0]["path"] == "quant.md" and saved.sources[0]["cited"] == "cited"


def test_an_answer_that_cites_nothing_gets_matched_citations(store, bases, kb):
    conversation = store.create()
    turn = chat.ask(store, conversation, "LMDeploy 支持哪些量化？")
    answer = prepare_answer(turn.question, turn.history, _llm(), Searcher(bases), [kb], SEARCH, AnswerSettings())
    chat.settle(store, turn, answer)
    text = "LMDeploy 支持 AWQ 4bit 权重量化 [7]。月亮是奶酪做的，这一点毫无疑问。"
    list(chat.stream_reply(store, turn, answer, iter([text])))
    saved = store.get(conversation.id).messages[1]
    assert saved.content == text  # the model's own words are kept as they were
    assert "[7]" not in saved.shown and "*[1]*" in saved.shown and "*[?]*" in saved.shown
    assert saved.sources[0]["cited"] == "matched"


def test_a_declining_answer_shows_the_sources_best_sentences_marked_in_them(store, bases, kb):
    conversation = store.create()
    turn = chat.ask(store, conversation, "LMDeploy 支持哪些量化？")
    answer = prepare_answer(turn.question, turn.history, _llm(), Searcher(bases), [kb], SEARCH, AnswerSettings())
    chat.settle(store, turn, answer)
    list(chat.stream_reply(store, turn, answer, iter(["资料中没有找到相关内容。"])))
    saved = store.get(conversation.id).messages[1]
    assert saved.content == "资料中没有找到相关内容。" and "*[?]*" not in saved.shown
    assert "模型认为资料中没有答案" in saved.shown and "AWQ 4bit" in saved.shown
    quoted = saved.sources[0]
    assert quoted["path"] == "quant.md" and quoted["cited"] == "quoted"
    start, end = quoted["quotes"][0]
    assert quoted["text"][start:end] in saved.shown


def test_a_quick_answer_quotes_the_sources_without_a_model(store, bases, kb):
    conversation = store.create()
    turn = chat.ask(store, conversation, "LMDeploy 支持哪些量化？")
    settings = AnswerSettings(mode="quick")
    answer = prepare_answer(turn.question, turn.history, None, Searcher(bases), [kb], SEARCH, settings)
    assert not answer.needs_model
    chat.settle(store, turn, answer, "SmolLM2", demo=True)
    saved = store.get(conversation.id).messages[1]
    assert saved.kind == "quick" and not saved.stopped
    assert saved.content.startswith("> ") and "AWQ 4bit" in saved.content and "[1]" in saved.content
    quoted = saved.sources[0]
    assert quoted["cited"] == "quoted"
    start, end = quoted["quotes"][0]
    assert quoted["text"][start:end] in saved.content


def test_answering_again_replaces_the_answer_and_asks_the_question_once(store):
    conversation = store.create()
    chat.ask(store, conversation, "Hello")
    conversation.messages[-1].content, conversation.messages[-1].kind = "Hi", "generated"
    chat.ask(store, conversation, "What is the weather on Mars?")
    conversation.messages[-1].kind = "no_match"
    turn = chat.answer_again(store, conversation, 3)
    assert turn.question == "What is the weather on Mars?"
    assert [(t.role, t.content) for t in turn.history] == [("user", "Hello"), ("assistant", "Hi")]
    assert [m.kind for m in store.get(conversation.id).messages] == ["generated", "generated", "generated", "pending"]


def test_a_failed_preparation_takes_the_pending_answer_away(store):
    conversation = store.create()
    turn = chat.ask(store, conversation, "Anything?")
    chat.abandon(store, turn)
    assert [m.role for m in store.get(conversation.id).messages] == ["user"]


def test_an_export_closes_a_code_block_an_answer_stopped_in(store):
    conversation = store.create()
    turn = chat.ask(store, conversation, "How to install?")
    turn.reply.content, turn.reply.kind = "Run:\n```bash\npip install lmdeploy", "generated"
    chat.ask(store, conversation, "Thanks")
    exported = export_markdown(conversation)
    assert exported.count("```") == 2 and exported.index("```\n") < exported.index("Thanks")


def test_the_answer_is_saved_while_it_is_written(store, bases, kb, monkeypatch):
    monkeypatch.setattr(chat, "SAVE_EVERY_S", 0.0)  # save after every piece
    conversation = store.create()
    turn = chat.ask(store, conversation, "LMDeploy 支持哪些量化？")
    answer = prepare_answer(turn.question, turn.history, _llm(), Searcher(bases), [kb], SEARCH, AnswerSettings())
    chat.settle(store, turn, answer)
    reply = chat.stream_reply(store, turn, answer, iter(["AWQ ", "and int8", " [1]"]))
    next(reply), next(reply), next(reply)  # the page is still drawing the third piece
    assert store.get(conversation.id).messages[1].content.startswith("AWQ and int8")  # another tab sees it
