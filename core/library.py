"""A few functions for using the app's models and knowledge bases from Python."""

from __future__ import annotations

import functools
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.retrievers import BaseRetriever

from core.models.loader import LoadOptions
from core.rag.retrieval import KnowledgeRetriever, SearchMode
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
    *kb_names: str, k: int | None = None, mode: SearchMode = "hybrid", threshold: float = 0.0
) -> BaseRetriever:
    """A LangChain retriever over the named knowledge bases.

    ``mode`` is "hybrid" (meaning and keywords, the default), "rrf" (the same, merged by
    rank), "dense", "mmr" or "keyword"; documents below the ``threshold`` relevance (0..1) are
    left out.
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
