"""A few functions for using the app's models and knowledge bases from Python."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.retrievers import BaseRetriever

from core.models.loader import LoadOptions
from core.rag.answer import AnswerMode, AnswerSettings, Reply, Turn, complete, prepare_answer
from core.rag.retrieval import KnowledgeRetriever, SearchMode, SearchSettings
from core.services import Services, build_services


@functools.cache
def get_services() -> Services:
    """The services of this process, built from the environment's settings on first use."""
    return build_services()


def load_chat_model(key: str | None = None, options: LoadOptions | None = None, **generation: Any) -> BaseChatModel:
    """Load catalog model ``key`` (the default model if None) as a LangChain chat model.

    ``generation`` sets max_new_tokens, temperature, top_p or repetition_penalty.
    """
    services = get_services()
    services.models.load(key or services.settings.default_model, options)
    return services.models.chat_model(**generation)


def open_retriever(
    *kb_names: str, k: int | None = None, mode: SearchMode = "hybrid", threshold: float | None = None
) -> BaseRetriever:
    """A LangChain retriever over the named knowledge bases.

    ``mode`` is "hybrid" (meaning and keywords, the default), "rrf" (the same, merged by
    rank), "dense", "mmr" or "keyword"; documents below the ``threshold`` relevance (0..1;
    by default the embedding model's calibrated floor) are left out.
    """
    services = get_services()
    for name in kb_names:
        services.knowledge.get(name)
    return KnowledgeRetriever(
        bases=services.knowledge,
        kb_names=list(kb_names),
        k=k or services.settings.top_k,
        mode=mode,
        threshold=threshold,
    )


def ask(
    question: str,
    *kb_names: str,
    llm: BaseChatModel | None = None,
    mode: AnswerMode = "generate",
    history: Sequence[Turn] = (),
    lang: str = "zh",
    k: int | None = None,
    **generation: Any,
) -> Reply:
    """Answer ``question`` from the named knowledge bases with the app's own pipeline: the same
    rewrite, search, relevance floor, prompt and citation checks as the Chat page.

    ``mode`` is "generate" (``llm`` writes the answer; the loaded model if None), "quick" (the
    sentences of the sources that best answer, quoted; no model) or "sources". With no
    knowledge base named, ``llm`` answers on its own.
    """
    services = get_services()
    kbs = [services.knowledge.get(name) for name in kb_names]
    if llm is None and mode == "generate":
        llm = services.models.chat_model()
    resident = services.models.current
    settings = AnswerSettings(lang=lang, mode=mode, can_rewrite=bool(resident and resident.spec.can_rewrite))
    search = SearchSettings(k=k or services.settings.top_k)
    answer = prepare_answer(question, history, llm, services.searcher(), kbs, search, settings)
    return complete(answer, llm, **generation)
