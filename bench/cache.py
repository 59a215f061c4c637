"""An on-disk cache of embeddings for benchmarks, so a re-run does not embed the same texts again.

It wraps any LangChain ``Embeddings`` and lives in the system's temporary folder (never in
the repository). Timed runs bypass it; it only serves stages that measure quality.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

CACHE_DIR = Path(os.environ.get("KBA_BENCH_CACHE", Path(tempfile.gettempdir()) / "kba-bench-cache"))


class CachedEmbeddings(Embeddings):
    """``inner``'s vectors, remembered by (model name, text)."""

    def __init__(self, inner: Embeddings, model: str) -> None:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        self.inner = inner
        self.model = model
        self._db = sqlite3.connect(CACHE_DIR / "embeddings.sqlite3", check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS v (key TEXT PRIMARY KEY, vector BLOB)")
        for name in ("count_tokens", "max_tokens"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def _key(self, kind: str, text: str) -> str:
        return hashlib.sha256(f"{self.model}\x1f{kind}\x1f{text}".encode()).hexdigest()

    def _cached(self, kind: str, texts: list[str], embed) -> list[list[float]]:
        keys = [self._key(kind, t) for t in texts]
        found = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(f"SELECT key, vector FROM v WHERE key IN ({marks})", part)  # noqa: S608
            found.update({k: np.frombuffer(b, dtype=np.float32).tolist() for k, b in rows})
        missing = [(k, t) for k, t in zip(keys, texts, strict=True) if k not in found]
        if missing:
            vectors = embed([t for _, t in missing])
            rows = [(k, np.asarray(v, dtype=np.float32).tobytes()) for (k, _), v in zip(missing, vectors, strict=True)]
            self._db.executemany("INSERT OR REPLACE INTO v VALUES (?, ?)", rows)
            self._db.commit()
            found.update({k: list(v) for (k, _), v in zip(missing, vectors, strict=True)})
        return [found[k] for k in keys]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Passages, from the cache where possible."""
        return self._cached("passage", texts, self.inner.embed_documents)

    def embed_query(self, text: str) -> list[float]:
        """A query, from the cache where possible."""
        return self._cached("query", [text], lambda texts: [self.inner.embed_query(texts[0])])[0]
