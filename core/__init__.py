"""Core of the knowledge-base assistant: models, knowledge bases and grounded answers.

Library use (nothing is imported until first used)::

    from core import load_chat_model, open_retriever
    llm = load_chat_model()                 # the embedded default, or any catalog key
    llm.invoke("你是谁")
    retriever = open_retriever("my docs")   # a knowledge base built in the app
    reply = ask("lmdeploy 支持哪些量化方式？", "my docs")  # the Chat page's own pipeline
"""

from __future__ import annotations

from typing import Any

__all__ = ["ask", "get_services", "load_chat_model", "open_retriever"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from core import library

        return getattr(library, name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")
