"""Answer a question from retrieved chunks, streaming the reply and returning its sources."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from core.rag.context import format_context
from core.rag.prompts import NO_CONTEXT_EN, NO_CONTEXT_ZH, qa_prompt


@dataclasses.dataclass
class Answer:
    """Sources first (already retrieved), then the reply as a stream of text pieces."""

    question: str
    sources: list[Document]
    tokens: Iterator[str]


def answer(question: str, retriever: BaseRetriever | None, llm: BaseChatModel, lang: str = "zh") -> Answer:
    """Retrieve, build the grounded prompt and start streaming the reply.

    Without a retriever the question goes to the model as it is.
    """
    if retriever is None:
        return Answer(question, [], (chunk.text for chunk in llm.stream(question)))
    sources = retriever.invoke(question)
    context = format_context(sources) or (NO_CONTEXT_ZH if lang == "zh" else NO_CONTEXT_EN)
    messages = qa_prompt(lang).format_messages(context=context, question=question)
    return Answer(question, sources, (chunk.text for chunk in llm.stream(messages)))


def rag_chain(retriever: BaseRetriever, llm: BaseChatModel, lang: str = "zh") -> Runnable:
    """The same pipeline as a LangChain runnable: question in, answer text out.

    Example::

        chain = rag_chain(retriever, llm)
        chain.invoke("lmdeploy 支持哪些量化方式？")
    """
    return (
        {"context": retriever | RunnableLambda(format_context), "question": RunnablePassthrough()}
        | qa_prompt(lang)
        | llm
        | StrOutputParser()
    )
