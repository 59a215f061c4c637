"""Chroma access: one client per process, one collection per knowledge base."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

from core.errors import StoreDamaged
from core.settings import Settings


def make_client(settings: Settings) -> Any:
    """A Chroma client: the local store under the data folder, or a ``chroma run`` server."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_host:
        return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


def collection(client: Any, name: str, embedding_key: str) -> Any:
    """The raw Chroma collection of a knowledge base, created if missing (cosine distance).

    Ingestion writes here with vectors it computed itself; no Chroma embedding function is
    involved, so Chroma never falls back to its default model (which it would download).
    """
    return client.get_or_create_collection(
        name, metadata={"hnsw:space": "cosine", "embedding": embedding_key}, embedding_function=None
    )


def drop_collection(client: Any, collection: str) -> None:
    """Delete a knowledge base's vectors, if there are any."""
    with damage_reported():
        if collection in {c.name for c in client.list_collections()}:
            client.delete_collection(collection)


def count(client: Any, collection: str) -> int:
    """Number of vectors in a collection (0 when it does not exist)."""
    with damage_reported():
        if collection not in {c.name for c in client.list_collections()}:
            return 0
        return client.get_collection(collection).count()


def stored_ids(client: Any, collection: str) -> set[str]:
    """Ids of every vector in a collection."""
    with damage_reported():
        if collection not in {c.name for c in client.list_collections()}:
            return set()
        return set(client.get_collection(collection).get(include=[])["ids"])


@contextlib.contextmanager
def damage_reported() -> Iterator[None]:
    """Turn a failure inside the vector store into :class:`StoreDamaged`, which says how to repair."""
    import chromadb.errors

    try:
        yield
    except (chromadb.errors.ChromaError, sqlite3.DatabaseError, OSError) as exc:
        raise StoreDamaged(detail=f"{type(exc).__name__}: {str(exc)[:200]}") from exc
