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


def _blocks(markdown: str) -> list[tuple[str, str]]:
    """The (kind, first line) of each paragraph and code block a CommonMark renderer sees."""
    from markdown_it import MarkdownIt

    kinds = {"inline", "fence", "code_block"}
    return [(tok.type, tok.content.split("\n")[0]) for tok in MarkdownIt().parse(markdown) if tok.type in kinds]


@pytest.mark.parametrize(
    "stopped_answer",
    [
        "Install it:\n\n```bash\npip install lmdeploy",
        "Install it:\n\n~~~\npip install lmdeploy",
        "A fence that shows a fence:\n\n````markdown\n```python\nprint(1)\n```",
        "Indented:\n\n  ```\ncode",
    ],
)
def test_an_answer_stopped_inside_a_code_block_exports_valid_markdown(tmp_path, stopped_answer):
    store = Conversations(tmp_path / "c", AppFiles(tmp_path))
    conversation = store.create("Install")
    conversation.messages += [
        Message("user", "How?"),
        Message("assistant", stopped_answer, stopped=True),
        Message("user", "And then?"),
        Message("assistant", "Run it."),
    ]
    blocks = _blocks(export_markdown(conversation))
    # The later turns are paragraphs of their own, not lines inside the unfinished code block.
    assert ("inline", "And then?") in blocks and ("inline", "Run it.") in blocks
    assert ("inline", "*(stopped)*") in blocks


def test_markdown_export_keeps_the_rewritten_question_and_the_vote(tmp_path):
    store = Conversations(tmp_path / "c", AppFiles(tmp_path))
    conversation = store.create("Follow-up")
    conversation.messages += [
        Message("user", "And the 8-bit one?"),
        Message(
            "assistant", "KV cache int8.", question_used="Which 8-bit\nquantization does lmdeploy support?", feedback=-1
        ),
        Message("user", "Thanks"),
        Message("assistant", "You're welcome.", feedback=1),
    ]
    text = export_markdown(conversation)
    assert "Searched for: Which 8-bit quantization does lmdeploy support?" in text
    assert "Feedback: 👎 not helpful" in text and "Feedback: 👍 helpful" in text
    zh = export_markdown(conversation, "zh")
    assert "检索时使用的问题：Which 8-bit quantization" in zh and "反馈：👍 有帮助" in zh
