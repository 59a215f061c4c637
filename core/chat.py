"""A conversation's turns: asking, answering again without the knowledge bases, and keeping
what the model writes while it writes.

The question and a pending answer are saved before any work starts, so a Stop, a page switch
or a closed tab never loses the question or the conversation; what the model has written is
saved as it comes (every ``SAVE_EVERY_S``) and once more when it ends or is stopped.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from typing import Any

from core.conversations import Conversation, Conversations, Message
from core.rag.answer import Answer, Turn, finished_text
from core.rag.extractive import Quote

SAVE_EVERY_S = 1.0


@dataclasses.dataclass
class PendingTurn:
    """A question being answered: what came before it, and the answer being filled in."""

    conversation: Conversation
    question: str
    history: list[Turn]
    reply: Message


def ask(store: Conversations, conversation: Conversation, question: str) -> PendingTurn:
    """Add ``question`` and a pending answer to ``conversation``, and save it."""
    history = _turns(conversation.messages)
    conversation.messages += [Message("user", question), Message("assistant", "", kind="pending", stopped=True)]
    store.save(conversation)
    return PendingTurn(conversation, question, history, conversation.messages[-1])


def answer_again(store: Conversations, conversation: Conversation, index: int) -> PendingTurn:
    """Answer the question of the answer at ``index`` again (without the knowledge bases, or
    generated instead of quoted: the caller decides how).

    The answer is replaced, not followed by another: the model sees the question once, after
    the turns before it, never two user turns in a row.
    """
    question = conversation.messages[index - 1].content
    reply = Message("assistant", "", kind="pending", stopped=True)
    conversation.messages[index] = reply
    store.save(conversation)
    return PendingTurn(conversation, question, _turns(conversation.messages[: index - 1]), reply)


def abandon(store: Conversations, turn: PendingTurn) -> None:
    """Take the pending answer away again (its preparation failed; the page shows why)."""
    if turn.reply in turn.conversation.messages:
        turn.conversation.messages.remove(turn.reply)
        store.save(turn.conversation)


def settle(
    store: Conversations, turn: PendingTurn, answer: Answer, model: str | None = None, demo: bool = False
) -> None:
    """Record what was decided before the model speaks: the sources, the question searched,
    the rewrite, and, when no model is to write, the answer itself.
    """
    reply = turn.reply
    reply.sources = source_records(answer)
    reply.grounded = answer.grounded
    reply.question_used = answer.standalone if answer.rewritten else None
    if answer.rewrite and answer.rewrite.skipped != "not needed":
        reply.rewrite = {"output": answer.rewrite.output, "skipped": answer.rewrite.skipped}
    reply.model, reply.demo = model, demo
    if answer.no_match:
        reply.kind, reply.stopped = "no_match", False
    elif not answer.needs_model:
        reply.kind, reply.stopped = answer.mode, False
        if answer.mode == "quick":
            reply.content = reply.shown = answer.quick_markdown()
            _mark_quotes(reply.sources, answer.quick.quotes if answer.quick else ())
    else:
        reply.kind = "generated"
    store.save(turn.conversation)


def stream_reply(store: Conversations, turn: PendingTurn, answer: Answer, pieces: Iterator[str]) -> Iterator[str]:
    """Pass the model's reply through, saving it as it comes; when it ends (or is stopped),
    attribute its sentences to the sources and save the finished answer.
    """
    reply = turn.reply
    received: list[str] = []
    finished = False
    saved_at = time.monotonic()
    try:
        for piece in pieces:
            received.append(piece)
            yield piece
            if time.monotonic() - saved_at > SAVE_EVERY_S:
                reply.content = "".join(received)
                store.save(turn.conversation)
                saved_at = time.monotonic()
        finished = True
    finally:
        reply.content = "".join(received)
        reply.stopped = not finished
        finished = finished_text(answer, reply.content)
        reply.shown = finished.shown
        _mark_quotes(reply.sources, finished.quotes.quotes if finished.quotes else ())
        kinds = finished.source_kinds()
        for source in reply.sources:
            source["cited"] = kinds.get(source["rank"])
        store.save(turn.conversation)


def _mark_quotes(sources: list[dict[str, Any]], quotes: Sequence[Quote]) -> None:
    """Record in each source the character ranges quoted from it (to highlight them), and
    mark it "quoted" when any are.
    """
    for source in sources:
        source["quotes"] = [[q.start, q.end] for q in quotes if q.source == source["rank"]]
        source["cited"] = "quoted" if source["quotes"] else None


def source_records(answer: Answer) -> list[dict[str, Any]]:
    """The answer's sources as kept with the message (``cited``: "cited", "matched",
    "quoted" or None, filled in once the answer is known).
    """
    return [
        {
            "rank": hit.rank,
            "kb": hit.kb.name,
            "path": hit.chunk.path,
            "start_line": hit.chunk.start_line,
            "end_line": hit.chunk.end_line,
            "start_col": hit.chunk.start_col,
            "end_col": hit.chunk.end_col,
            "source_id": hit.chunk.source_id,
            "page": hit.chunk.page,
            "heading": hit.chunk.heading,
            "score": hit.relevance,
            "text": hit.chunk.text,
            "url": hit.url,
            "cited": None,
        }
        for hit in answer.hits
    ]


def _turns(messages: list[Message]) -> list[Turn]:
    """The conversation as the model should see it: questions and the answers' own words."""
    return [Turn(m.role, m.content) for m in messages if m.content and m.kind != "pending"]
