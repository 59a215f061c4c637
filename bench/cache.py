"""On-disk caches of embeddings and chat replies for benchmarks, so a re-run does not embed
or generate the same thing again.

It wraps any LangChain ``Embeddings`` and lives in the system's temporary folder (never in
the repository). Timed runs bypass it; it only serves stages that measure quality.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

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


class CachedChatModel(BaseChatModel):
    """``inner``'s replies, remembered by (model name, messages, generation settings), with the
    seconds the reply took when it was first generated.

    Generation on this CPU is the slow part of the answer benchmark (seconds per answer); the
    figures that are computed from the replies (citations, declines) can then be re-measured
    after a change to the pipeline's checks without generating again. A changed prompt is a
    new key, so it is generated anew.
    """

    inner: BaseChatModel
    model: str

    @property
    def _llm_type(self) -> str:
        return "cached"

    def _key(self, messages: list[BaseMessage], kwargs: dict) -> str:
        turns = [(m.type, m.text) for m in messages]
        settings = sorted((k, repr(v)) for k, v in kwargs.items())
        return hashlib.sha256(json.dumps([self.model, turns, settings], ensure_ascii=False).encode()).hexdigest()

    def _db(self) -> sqlite3.Connection:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(CACHE_DIR / "generations.sqlite3")
        db.execute("CREATE TABLE IF NOT EXISTS g (key TEXT PRIMARY KEY, text TEXT, seconds REAL)")
        return db

    def reply(self, messages: list[BaseMessage], **kwargs: Any) -> tuple[str, float]:
        """The reply to ``messages`` and the seconds it took to generate (once)."""
        key = self._key(messages, kwargs)
        with contextlib.closing(self._db()) as db:
            row = db.execute("SELECT text, seconds FROM g WHERE key = ?", (key,)).fetchone()
        if row:
            return row[0], row[1]
        started = time.perf_counter()
        text = "".join(chunk.text for chunk in self.inner.stream(messages, **kwargs))
        seconds = time.perf_counter() - started
        with contextlib.closing(self._db()) as db, db:
            db.execute("INSERT OR REPLACE INTO g VALUES (?, ?, ?)", (key, text, seconds))
        return text, seconds

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        text, _ = self.reply(messages, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])

    def _stream(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any):
        text, _ = self.reply(messages, **kwargs)
        yield ChatGenerationChunk(message=AIMessageChunk(text))
