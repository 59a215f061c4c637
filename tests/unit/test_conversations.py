import pytest

from core.app_files import AppFiles
from core.conversations import Conversations, Message, export_markdown
from core.errors import ConversationNotFound


def test_conversations_are_saved_titled_renamed_and_deleted(tmp_path):
    store = Conversations(tmp_path / "c", AppFiles(tmp_path))
    first = store.create()
    first.messages += [Message("user", "lmdeploy 支持哪些量化方式？"), Message("assistant", "AWQ [1]")]
    store.save(first)
    again = Conversations(tmp_path / "c", AppFiles(tmp_path)).get(first.id)
    assert again.title == "lmdeploy 支持哪些量化方式？" and [m.role for m in again.messages] == ["user", "assistant"]
    store.rename(first.id, "量化")
    second = store.create("later")
    assert [c.title for c in store.all()] == ["later", "量化"]
    store.delete(first.id)
    assert [c.id for c in store.all()] == [second.id]
    with pytest.raises(ConversationNotFound):
        store.get(first.id)


def test_feedback_is_stored_with_the_answer(tmp_path):
    store = Conversations(tmp_path / "c", AppFiles(tmp_path))
    conversation = store.create()
    conversation.messages += [Message("user", "q"), Message("assistant", "a")]
    store.save(conversation)
    store.set_feedback(conversation.id, 1, -1)
    assert store.get(conversation.id).messages[1].feedback == -1


def test_ids_cannot_reach_other_files(tmp_path):
    with pytest.raises(ConversationNotFound):
        Conversations(tmp_path / "c", AppFiles(tmp_path)).get("../secrets")


def test_markdown_export_lists_each_answers_sources(tmp_path):
    store = Conversations(tmp_path / "c", AppFiles(tmp_path))
    conversation = store.create("Quantization")
    source = {
        "rank": 1,
        "kb": "docs",
        "path": "quant.md",
        "start_line": 3,
        "end_line": 9,
        "score": 0.82,
        "url": "https://github.com/InternLM/lmdeploy/blob/abc/quant.md#L3-L9",
    }
    conversation.messages += [Message("user", "Which?"), Message("assistant", "AWQ [1]", sources=[source])]
    text = export_markdown(conversation)
    assert text.startswith("# Quantization\n")
    link = "<https://github.com/InternLM/lmdeploy/blob/abc/quant.md#L3-L9>"
    assert f"1. docs / quant.md:3-9 (relevance 0.82) {link}" in text
