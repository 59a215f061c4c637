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


class FakeHub:
    """A model hub in memory, implementing the downloader's ``HubClient`` interface.

    It can drop the connection once after ``fail_after`` bytes, ignore Range requests, or
    raise ``error`` on every call (an unreachable hub, a missing repository).
    """

    name = "FakeHub"

    def __init__(self, files, *, fail_after=None, ignore_range=False, error=None, chunk=4, on_chunk=None):
        self.files = files
        self.fail_after = fail_after
        self.ignore_range = ignore_range
        self.error = error
        self.chunk = chunk
        self.on_chunk = on_chunk
        self.opened: list[tuple[str, int]] = []

    def list_files(self, repo_id, revision=None):
        from core.models.hubs import RemoteFile

        if self.error:
            raise self.error
        return [RemoteFile(path, len(data), hashlib.sha256(data).hexdigest()) for path, data in self.files.items()]

    def open(self, repo_id, path, revision=None, offset=0):
        from core.errors import HubUnreachable
        from core.models.hubs import RemoteStream

        if self.error:
            raise self.error
        self.opened.append((path, offset))
        start = 0 if self.ignore_range else offset
        body = self.files[path][start:]

        def chunks():
            for i in range(0, len(body), self.chunk):
                if self.fail_after is not None and i >= self.fail_after:
                    self.fail_after = None
                    raise HubUnreachable(hub=self.name, detail="connection reset")
                if self.on_chunk:
                    self.on_chunk()
                yield body[i : i + self.chunk]

        return RemoteStream(start, len(self.files[path]), chunks())
