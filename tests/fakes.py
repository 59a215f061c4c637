"""Test doubles that implement the real LangChain interfaces."""

from __future__ import annotations

import hashlib
import itertools
import math
import re

from langchain_core.embeddings import Embeddings

_WORDS = re.compile(r"[a-z0-9]+|[\u4e00-\u9fff]")


class HashEmbeddings(Embeddings):
    """Deterministic bag-of-words embeddings: texts sharing words (or Chinese characters and
    their bigrams) are close, so retrieval behaves sensibly without a model."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls: list[int] = []

    def _features(self, text: str) -> list[str]:
        tokens = _WORDS.findall(text.lower())
        bigrams = [a + b for a, b in itertools.pairwise(tokens) if len(a) == len(b) == 1]
        return tokens + bigrams

    def _vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dim
        for feature in self._features(text):
            slot = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=4).digest(), "big") % self.dim
            vec[slot] += 1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)

    @property
    def embedded(self) -> int:
        """How many texts were embedded as documents so far."""
        return sum(self.calls)
