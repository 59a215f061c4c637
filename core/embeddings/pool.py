"""Embedding models loaded once per process and shared by every knowledge base that uses them."""

from __future__ import annotations

import threading
from collections.abc import Callable

from langchain_core.embeddings import Embeddings

from core.embeddings.catalog import EmbeddingSpec, embedding_spec
from core.embeddings.factory import build_embeddings


class EmbeddingPool:
    """Builds each embedding model on first use; later calls get the same object."""

    def __init__(self, batch_size: int = 32, builder: Callable[[EmbeddingSpec, int], Embeddings] | None = None) -> None:
        self._batch_size = batch_size
        self._builder = builder or (lambda spec, batch: build_embeddings(spec, batch))
        self._lock = threading.Lock()
        self._models: dict[str, Embeddings] = {}

    def get(self, key: str) -> Embeddings:
        """The embedding model ``key``; raises :class:`UnknownEmbedding` for an unknown key."""
        spec = embedding_spec(key)
        with self._lock:
            if key not in self._models:
                self._models[key] = self._builder(spec, self._batch_size)
            return self._models[key]
