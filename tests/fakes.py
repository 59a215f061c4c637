"""Test doubles that implement the real LangChain interfaces."""

from __future__ import annotations

import hashlib
import itertools
import math
import re

from langchain_core.embeddings import Embeddings

from core.embeddings.catalog import EmbeddingSpec

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


# The catalog row of HashEmbeddings, with a relevance scale fitted to how they score (bag of
# words: unrelated text near 0.1, shared words up to 0.6).
HASH_ROW = EmbeddingSpec(
    "hash-words", "hash words (tests)", "sentence-transformers", 256, 512, "en", package="tests",
    score_floor=0.1, score_ceiling=0.6, keyword_weight=0.6, relevance_floor=0.3,
)  # fmt: skip


def hash_knowledge_base(bases, root, files: dict[str, str], name: str):
    """A knowledge base ``name`` over HashEmbeddings holding ``files`` (name: text), written to ``root``."""
    from core.knowledge.ingest import Ingestion
    from core.knowledge.sources import FolderInput, prepare
    from core.knowledge.splitting import SplitterSettings

    bases.embeddings.registry.add(HASH_ROW)
    root.mkdir()
    for file_name, text in files.items():
        (root / file_name).write_text(text, encoding="utf-8")
    kb = bases.create(name, HASH_ROW.key, SplitterSettings(300, 50))
    ready = prepare(bases, kb, FolderInput(root))
    Ingestion(bases, kb, ready.source, ready.root, max_file_bytes=10**6).run()
    return kb
