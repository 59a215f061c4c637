"""Conversations kept in the data folder: one JSON file each, written atomically."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from core.app_files import AppFiles, inside, safe_name, write_atomically
from core.credentials import forget_in_file
from core.errors import ConversationNotFound
from core.rag.context import source_label

_TITLE_CHARS = 40
# What an export says for answers that have no words of their own.
_EMPTY_ANSWERS = {
    "no_match": {
        "en": "(Nothing in the knowledge bases fits this question.)",
        "zh": "（知识库中没有与该问题相关的内容。）",
    },
    "sources": {"en": "(Sources only.)", "zh": "（只看出处。）"},
    "pending": {"en": "(No answer: stopped.)", "zh": "（没有回答：已停止。）"},
}


@dataclasses.dataclass
class Message:
    """One turn. Answers keep their sources, the question retrieval used, and the user's vote.

    ``content`` is what was said (the model's own words for a generated answer); ``shown`` is
    the answer as displayed, with matched citations and unsupported sentences marked.
    ``kind`` says what an answer is: "generated", "quick" (quoted from the sources, no model),
    "no_match" (nothing relevant enough was found), "sources" (sources only) or "pending"
    (not answered yet: the run stopped before the model spoke). ``rewrite`` records the
    follow-up rewrite: its output and, when it was not used, why.
    """

    role: str
    content: str
    sources: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    question_used: str | None = None
    grounded: bool = False
    stopped: bool = False
    feedback: int = 0  # 1 thumbs up, -1 thumbs down
    at: float = dataclasses.field(default_factory=time.time)
    kind: str = "generated"
    shown: str = ""
    model: str | None = None
    demo: bool = False
    rewrite: dict[str, Any] | None = None


@dataclasses.dataclass
class Conversation:
    """A titled list of messages."""

    id: str
    title: str
    created: float
    updated: float
    messages: list[Message] = dataclasses.field(default_factory=list)


class Conversations:
    """The conversations of one data folder."""

    def __init__(self, folder: Path, files: AppFiles) -> None:
        self._folder = files.make_dir(folder)
        self._files = files
        self._lock = threading.Lock()
        for path in self._folder.glob("*.json"):
            # Answers of earlier versions kept git addresses with their tokens among their sources.
            with contextlib.suppress(OSError, ValueError):
                forget_in_file(path)

    def all(self) -> list[Conversation]:
        """Every conversation, most recently changed first (unreadable files are left out)."""
        found = []
        for path in self._folder.glob("*.json"):
            try:
                found.append(_load(path))
            except (OSError, ValueError, TypeError):
                continue
        return sorted(found, key=lambda c: -c.updated)

    def create(self, title: str = "") -> Conversation:
        """A new, empty conversation."""
        now = time.time()
        conversation = Conversation(uuid.uuid4().hex[:12], title.strip(), now, now)
        self.save(conversation)
        return conversation

    def get(self, conversation_id: str) -> Conversation:
        """The conversation ``conversation_id``; raises :class:`ConversationNotFound`."""
        path = self._path(conversation_id)
        try:
            return _load(path)
        except (OSError, ValueError, TypeError):
            raise ConversationNotFound(id=conversation_id) from None

    def save(self, conversation: Conversation) -> None:
        """Write a conversation; a message's first words become the title of an untitled one."""
        if not conversation.title and conversation.messages:
            first = conversation.messages[0].content.strip().replace("\n", " ")
            conversation.title = first[:_TITLE_CHARS] + ("…" if len(first) > _TITLE_CHARS else "")
        conversation.updated = time.time()
        path = self._path(conversation.id)
        with self._lock:
            write_atomically(path, json.dumps(dataclasses.asdict(conversation), ensure_ascii=False))

    def rename(self, conversation_id: str, title: str) -> None:
        """Give a conversation another title."""
        conversation = self.get(conversation_id)
        conversation.title = title.strip() or conversation.title
        self.save(conversation)

    def delete(self, conversation_id: str) -> None:
        """Remove a conversation's file (nothing else)."""
        self._files.remove(self._path(conversation_id))

    def set_feedback(self, conversation_id: str, index: int, value: int) -> None:
        """Store a thumbs up (1), down (-1) or nothing (0) for message ``index``."""
        conversation = self.get(conversation_id)
        conversation.messages[index].feedback = value
        self.save(conversation)

    def last_used_kb(self, names: list[str]) -> str | None:
        """Of the knowledge bases ``names``, the one the latest answer found its sources in."""
        for conversation in self.all():
            for message in reversed(conversation.messages):
                used = [s["kb"] for s in message.sources if s.get("kb") in names]
                if used:
                    return used[0]
        return None

    def _path(self, conversation_id: str) -> Path:
        if not conversation_id.isalnum():  # ids are hex; anything else could name another path
            raise ConversationNotFound(id=conversation_id)
        return inside(self._folder, f"{conversation_id}.json")


def _load(path: Path) -> Conversation:
    data = json.loads(path.read_text(encoding="utf-8"))
    data["messages"] = [Message(**m) for m in data.get("messages", [])]
    return Conversation(**data)


def export_name(conversation: Conversation) -> str:
    """The file name a Markdown export is offered under: the title, made one safe file name."""
    title = (conversation.title or conversation.id).replace("/", "-").replace("\\", "-")  # a title is no path
    return safe_name(f"{title}.md")


def export_markdown(conversation: Conversation, lang: str = "en") -> str:
    """The conversation as Markdown: each question, each answer with the question that was
    searched for (when a follow-up was rewritten), the user's vote and the sources.

    Every message is closed off on its own (an answer stopped inside a code block gets its
    fence closed), so one message never swallows the next.
    """
    words = _EXPORT_WORDS["zh" if lang == "zh" else "en"]
    lines = [f"# {conversation.title or conversation.id}", ""]
    for message in conversation.messages:
        said = close_fences(message.shown or message.content) or _EMPTY_ANSWERS.get(message.kind, {}).get(lang, "")
        lines += [f"**{words['you'] if message.role == 'user' else words['assistant']}:**", "", said, ""]
        if message.stopped:
            lines += [words["stopped"], ""]
        if message.question_used:
            lines += [words["searched"].format(question=_one_line(message.question_used)), ""]
        if message.feedback:
            lines += [words["feedback"].format(vote=words["up" if message.feedback > 0 else "down"]), ""]
        if message.sources:
            lines += [words["sources"], ""]
            for source in message.sources:
                where = source_label(Document("", metadata=source))
                link = f" <{source['url']}>" if source.get("url") else ""
                lines.append(f"{source['rank']}. {source['kb']} / {where} (relevance {source['score']:.2f}){link}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_EXPORT_WORDS = {
    "en": {
        "you": "You",
        "assistant": "Assistant",
        "sources": "Sources:",
        "searched": "Searched for: {question}",
        "feedback": "Feedback: {vote}",
        "up": "👍 helpful",
        "down": "👎 not helpful",
        "stopped": "*(stopped)*",
    },
    "zh": {
        "you": "我",
        "assistant": "助手",
        "sources": "出处：",
        "searched": "检索时使用的问题：{question}",
        "feedback": "反馈：{vote}",
        "up": "👍 有帮助",
        "down": "👎 没有帮助",
        "stopped": "*（已停止）*",
    },
}
# An opening code fence: up to three spaces (more inside list items), then three or more
# backticks or tildes, and for backticks an info string without backticks (CommonMark 4.5).
_FENCE_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}(?=[^`]*$)|~{3,})")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def close_fences(text: str) -> str:
    r"""``text`` with a code fence that was opened and never closed (an answer stopped inside a
    code block) closed, so that what follows is not swallowed into it.

    A fence closes only with the same character, at least as many times, and nothing after it,
    so a ```` block that shows a ``` line, or a ~~~ block, is closed with its own fence.

    >>> close_fences("Run:\n```bash\npip install x")
    'Run:\n```bash\npip install x\n```'
    >>> close_fences("````md\n```python\nx = 1\n```")
    '````md\n```python\nx = 1\n```\n````'
    >>> close_fences("~~~\ncode\n~~~")
    '~~~\ncode\n~~~'
    """
    opened: tuple[str, str] | None = None  # (indent, fence) of the open block
    for line in text.splitlines():
        if opened is None:
            if match := _FENCE_OPEN.match(line):
                opened = (match["indent"], match["fence"])
            continue
        fence = opened[1]
        stripped = line.strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            opened = None
    if opened is None:
        return text
    indent, fence = opened
    return text.rstrip("\n") + f"\n{indent}{fence}"
