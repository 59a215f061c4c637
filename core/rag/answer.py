"""Answer a question from retrieved chunks: rewrite follow-ups, retrieve, prompt, stream, cite.

The sources are retrieved first and returned with the answer, so the page can show them
whatever happens to the stream. With chat history, a follow-up question ("它什么时候发布的？")
is first rewritten into a standalone one, since retrieval sees only the question. A bounded
window of the history goes into the prompt.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from core.errors import InvalidTemplate
from core.knowledge.records import KnowledgeBase
from core.rag.context import format_context
from core.rag.prompts import (
    NO_CONTEXT_EN,
    NO_CONTEXT_ZH,
    chat_system_prompt,
    condense_prompt,
    qa_system_prompt,
    qa_template,
)
from core.rag.retrieval import Hit, Searcher, SearchSettings

_CITATION = re.compile(r"\[(\d{1,2})\]")


@dataclasses.dataclass(frozen=True)
class Turn:
    """One message of a conversation."""

    role: Literal["user", "assistant"]
    content: str


@dataclasses.dataclass(frozen=True)
class AnswerSettings:
    """How to answer: language, prompt template, follow-up rewriting, history window."""

    lang: str = "zh"
    template: str | None = None
    rewrite: bool = True
    history_messages: int = 6
    history_chars: int = 4000


@dataclasses.dataclass
class Answer:
    """Everything decided before the model speaks: the question used, the sources, the prompt.

    ``no_match`` means the knowledge bases were searched and nothing reached the threshold.
    """

    question: str
    standalone: str
    hits: list[Hit]
    messages: list[BaseMessage]
    grounded: bool

    @property
    def rewritten(self) -> bool:
        """Whether the question was rewritten for retrieval."""
        return self.standalone != self.question

    @property
    def no_match(self) -> bool:
        """Searched, and nothing relevant enough was found."""
        return self.grounded and not self.hits

    def stream(self, llm: BaseChatModel, **generation: Any) -> Iterator[str]:
        """The reply, piece by piece."""
        for chunk in llm.stream(self.messages, **generation):
            yield chunk.text


def check_template(template: str) -> str:
    """The template if it has both ``{context}`` and ``{question}``; else :class:`InvalidTemplate`."""
    missing = [name for name in ("{context}", "{question}") if name not in template]
    if missing:
        raise InvalidTemplate(missing=", ".join(missing))
    return template


def prepare_answer(
    question: str,
    history: Sequence[Turn],
    llm: BaseChatModel,
    searcher: Searcher | None = None,
    kbs: Sequence[KnowledgeBase] = (),
    search: SearchSettings | None = None,
    settings: AnswerSettings | None = None,
) -> Answer:
    """Rewrite (if asked), retrieve and build the prompt; nothing is generated yet."""
    settings = settings or AnswerSettings()
    window = _window(history, settings)
    if searcher is None or not kbs:
        messages = [SystemMessage(chat_system_prompt(settings.lang)), *window, HumanMessage(question)]
        return Answer(question, question, [], messages, grounded=False)
    standalone = question
    if settings.rewrite and window:
        standalone = rewrite_question(question, window, llm, settings.lang)
    hits = searcher.search(standalone, kbs, search or SearchSettings())
    docs = [hit.document() for hit in hits]
    context = format_context(docs) or (NO_CONTEXT_ZH if settings.lang == "zh" else NO_CONTEXT_EN)
    template = check_template(settings.template or qa_template(settings.lang))
    last = template.replace("{context}", context).replace("{question}", question)
    messages = [SystemMessage(qa_system_prompt(settings.lang)), *window, HumanMessage(last)]
    return Answer(question, standalone, hits, messages, grounded=True)


def rewrite_question(question: str, history: Sequence[BaseMessage], llm: BaseChatModel, lang: str) -> str:
    """A standalone version of a follow-up question; the question itself if the model's
    rewrite is unusable (empty, or far longer than a question).
    """
    transcript = "\n".join(
        f"{'用户' if lang == 'zh' else 'User'}: {m.text}"
        if m.type == "human"
        else f"{'助手' if lang == 'zh' else 'Assistant'}: {m.text}"
        for m in history
    )
    prompt = condense_prompt(lang).replace("{history}", transcript).replace("{question}", question)
    reply = llm.invoke([HumanMessage(prompt)], temperature=0.0, max_new_tokens=96).text
    lines = [line.strip().strip("\"'“”「」") for line in reply.strip().splitlines() if line.strip()]
    candidate = lines[0] if lines else ""
    for prefix in ("Standalone question:", "独立问题：", "独立问题:"):
        candidate = candidate.removeprefix(prefix).strip()
    if not candidate or len(candidate) > 4 * len(question) + 80:
        return question
    return candidate


def _window(history: Sequence[Turn], settings: AnswerSettings) -> list[BaseMessage]:
    """The most recent turns, as many as fit in the message and character budget."""
    kept: list[BaseMessage] = []
    used = 0
    for turn in reversed(list(history)[-settings.history_messages :]):
        used += len(turn.content)
        if used > settings.history_chars:
            break
        kept.insert(0, HumanMessage(turn.content) if turn.role == "user" else AIMessage(turn.content))
    # A window must not start with an answer whose question was cut off.
    while kept and kept[0].type == "ai":
        kept.pop(0)
    return kept


def cited_numbers(text: str, count: int) -> list[int]:
    """Source numbers an answer cites as [n], in order of first mention, within 1..count.

    >>> cited_numbers("AWQ [2] and int8 [1][2]; not [9].", 3)
    [2, 1]
    """
    seen = dict.fromkeys(int(n) for n in _CITATION.findall(text) if 1 <= int(n) <= count)
    return list(seen)


def link_citations(text: str, anchors: dict[int, str]) -> str:
    r"""Markdown where each ``[n]`` that has an anchor links to it.

    >>> print(link_citations("See [1].", {1: "#src-1"}))
    See [\[1\]](#src-1).
    """
    return _CITATION.sub(
        lambda m: f"[\\[{m.group(1)}\\]]({anchors[int(m.group(1))]})" if int(m.group(1)) in anchors else m.group(0),
        text,
    )


def rag_chain(retriever: BaseRetriever, llm: BaseChatModel, lang: str = "zh") -> Runnable:
    """The grounded-answer pipeline as a LangChain runnable: question in, answer text out.

    Example::

        chain = rag_chain(retriever, llm)
        chain.invoke("lmdeploy 支持哪些量化方式？")
    """
    prompt = ChatPromptTemplate.from_messages([("system", qa_system_prompt(lang)), ("human", qa_template(lang))])

    def context(docs: list[Document]) -> str:
        return format_context(docs) or (NO_CONTEXT_ZH if lang == "zh" else NO_CONTEXT_EN)

    return (
        {"context": retriever | RunnableLambda(context), "question": RunnablePassthrough()}
        | prompt
        | llm
        | StrOutputParser()
    )
