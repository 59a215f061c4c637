"""Chroma access: one store per process, one collection per knowledge base."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from core.app_files import write_atomically
from core.errors import StoreDamaged
from core.locks import Locks
from core.settings import Settings

_STALE = -1  # the version of a client that must be opened again before its next use


def open_store(settings: Settings) -> VectorStore:
    """The vector store: the local Chroma store under the data folder, or a ``chroma run`` server."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_host:
        # A server serialises its clients' writes and serves one index to all of them.
        client = chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
        return VectorStore(lambda: (client, lambda: None))
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    locks = Locks(settings.data_dir)
    return VectorStore(
        lambda: _open_local(settings.chroma_dir, chroma_settings), locks.store(), locks.folder / "chroma.version"
    )


_REGISTRY = threading.Lock()  # over chromadb's registry of systems, which is the whole process's


def _open_local(path: Path, chroma_settings: Any) -> tuple[Any, Callable[[], None]]:
    """A client of the local store with a Chroma "system" of its own, and the way to stop it.

    chromadb gives every client of one path in a process the same system, and with it the same
    cache of vector indexes (``SharedSystemClient``); taking the new system out of that registry
    makes the next open build a fresh one that reads the store again. The registry is private
    to chromadb, so this is tied to the version requirements.txt pins.
    """
    import chromadb
    from chromadb.api.shared_system_client import SharedSystemClient

    key = str(path)
    with _REGISTRY:
        SharedSystemClient._identifier_to_system.pop(key, None)
        client = chromadb.PersistentClient(path=key, settings=chroma_settings)
        system = SharedSystemClient._identifier_to_system.pop(key)
        SharedSystemClient._identifier_to_refcount.pop(key, None)
    return client, system.stop


# How widely the vector index searches. Chroma's default (100) made the dense top 10 differ
# between two processes on the same data folder for 0.75% of CMRC 2018 questions: vectors not
# yet written into the index file are re-inserted when a process opens it, so each process
# searches a slightly different graph, and a narrow search follows each graph to different
# neighbours. At 400 the lists agreed in every process (tests/integration/test_vector_search_stability.py).
EF_SEARCH = 400


def collection(client: Any, name: str, embedding_key: str) -> Any:
    """The raw Chroma collection of a knowledge base, created if missing (cosine distance).

    Ingestion writes here with vectors it computed itself; no Chroma embedding function is
    involved, so Chroma never falls back to its default model (which it would download).
    """
    found = client.get_or_create_collection(
        name, metadata={"hnsw:space": "cosine", "embedding": embedding_key}, embedding_function=None
    )
    if (found.configuration.get("hnsw") or {}).get("ef_search", EF_SEARCH) < EF_SEARCH:
        found.modify(configuration={"hnsw": {"ef_search": EF_SEARCH}})
    return found


def drop_collection(client: Any, collection: str) -> None:
    """Delete a knowledge base's vectors, if there are any."""
    with damage_reported():
        if collection in {c.name for c in client.list_collections()}:
            client.delete_collection(collection)


class VectorStore:
    """This process's way into Chroma, kept in step with what other processes write there.

    What chromadb 1.5.9 does with a local store (its Rust sources: segment/src/local_hnsw.rs,
    local_segment_manager.rs, log/src/local_compaction_manager.rs, frontend/src/executor/local.rs):
    a write goes to a log table in chroma.sqlite3 and is applied at once to the metadata tables
    and to the collection's vector index. Each process loads that index from its files on first
    use, keeps it in memory for good, and writes it back only every 1,000 changes, then trims
    the log. A process replays the log only when it first uses a collection, or when it writes.
    So after another process writes:

    - ``count`` and ``get`` (SQLite) see the change, but ``query`` searches the old index in
      memory: the new chunks are never found, and ``get`` of their embeddings fails;
    - if that process also wrote its index back, a write from here applies only the changes
      after this process's own last ones, and its next write-back replaces the files with an
      index that lacks the other's vectors: lost from the index for good, though still counted.

    Hence every call compares the version in ``<data>/locks/chroma.version``, which each write
    of each process raises, with the one its client was opened at, and opens a fresh client
    first when they differ (tens of milliseconds). The old one is stopped once no call uses it.

    Every write holds one lock for the whole store across processes, not only its knowledge
    base's: raising the version and writing must be one step, or a write of another process
    in between would be taken for this one's and go unnoticed; a client loads a collection's
    index files on first use, so that first use holds the lock too, lest it read files that
    another process is writing back; and the processes share one log and catalog in SQLite,
    which Chroma does not document as safe for several writers. The lock is held for a single
    Chroma call, not a whole job, so ingestions into two knowledge bases still run side by
    side and take turns only to write. Reads of a collection already in memory take no lock.
    (Chroma keeps at most a fifth of the open-file limit of indexes in memory; one dropped
    from there is loaded again outside the lock, a risk only with hundreds of bases in use.)
    With a Chroma server, which serialises its clients itself, ``lock`` and ``version`` are None.
    """

    def __init__(
        self,
        open_client: Callable[[], tuple[Any, Callable[[], None]]],
        lock: FileLock | None = None,
        version: Path | None = None,
    ) -> None:
        self._open = open_client
        self._lock = lock
        self._version = version
        self._guard = threading.Lock()  # over _opened and its use counts
        self._opened: _Opened | None = None

    def collection(self, name: str, embedding_key: str) -> Collection:
        """A knowledge base's collection (created on first use if missing)."""
        return Collection(self, name, embedding_key)

    def drop(self, name: str) -> None:
        """Delete a collection's vectors, if there are any."""
        with self.using(name, write=True) as opened:
            drop_collection(opened.client, name)
            opened.version = _STALE  # it holds the dropped collection: open afresh next time

    @contextlib.contextmanager
    def using(self, name: str, *, write: bool) -> Iterator[_Opened]:
        """The current client, for one call on collection ``name``; holds the store's lock
        unless the call only reads a collection the client already loaded.
        """
        opened = None if write else self._enter_loaded(name)
        if opened is None:
            with self._lock or contextlib.nullcontext():
                opened = self._enter_current(write)
                try:
                    yield opened
                except BaseException:
                    if write:  # the index in memory may now differ from the files
                        opened.version = _STALE
                    raise
                finally:
                    self._leave(opened)
            return
        try:
            yield opened
        finally:
            self._leave(opened)

    def _enter_loaded(self, name: str) -> _Opened | None:
        version = self._read_version()
        with self._guard:
            opened = self._opened
            if opened is None or opened.version != version or name not in opened.collections:
                return None
            opened.users += 1
            return opened

    def _enter_current(self, write: bool) -> _Opened:
        """The client to use under the lock: opened again if the store changed since."""
        version = self._read_version()
        current = self._opened
        if current is None or current.version != version:
            current = _Opened(*self._open(), version)
            with self._guard:
                old, self._opened = self._opened, current
                stop = old is not None and old.retire()
            if stop:
                old.stop()
        if write and self._version is not None:
            write_atomically(self._version, str(version + 1))
            current.version = version + 1
        with self._guard:
            current.users += 1
        return current

    def _leave(self, opened: _Opened) -> None:
        with self._guard:
            opened.users -= 1
            stop = opened.retired and not opened.users
        if stop:
            opened.stop()

    def _read_version(self) -> int:
        if self._version is None:
            return 0
        try:
            return int(self._version.read_text(encoding="ascii"))
        except (FileNotFoundError, ValueError):
            return 0  # not written yet (or damaged: the next write writes it whole again)


@dataclasses.dataclass(eq=False)
class _Opened:
    """One client of the store, the version it is current for, and the collections it loaded."""

    client: Any
    stop: Callable[[], None]
    version: int
    collections: dict[str, Any] = dataclasses.field(default_factory=dict)
    users: int = 0
    retired: bool = False

    def collection(self, name: str, embedding_key: str) -> Any:
        """The raw collection ``name``; found (and loaded) under the store's lock the first time."""
        found = self.collections.get(name)
        if found is None:
            found = self.collections[name] = collection(self.client, name, embedding_key)
        return found

    def retire(self) -> bool:
        """Mark the client replaced; returns whether it can be stopped now."""
        self.retired = True
        return not self.users


class Collection:
    """A knowledge base's Chroma collection, reached through the store's current client.

    An ingestion keeps one for its whole run: each call looks up the client again, so the run
    goes on when another process's write makes the store open a fresh client.
    """

    def __init__(self, store: VectorStore, name: str, embedding_key: str) -> None:
        self._store = store
        self.name = name
        self._embedding_key = embedding_key

    def count(self) -> int:
        """Number of vectors."""
        return self._call("count", write=False)

    def get(self, **kwargs: Any) -> Any:
        """Chroma's ``get``: stored ids, documents, metadata or embeddings."""
        return self._call("get", write=False, **kwargs)

    def query(self, **kwargs: Any) -> Any:
        """Chroma's ``query``: the nearest vectors."""
        return self._call("query", write=False, **kwargs)

    def upsert(self, **kwargs: Any) -> None:
        """Chroma's ``upsert``: add or replace vectors by id."""
        self._call("upsert", write=True, **kwargs)

    def delete(self, **kwargs: Any) -> None:
        """Chroma's ``delete``: remove vectors by id."""
        self._call("delete", write=True, **kwargs)

    def _call(self, method: str, *, write: bool, **kwargs: Any) -> Any:
        with self._store.using(self.name, write=write) as opened:
            return getattr(opened.collection(self.name, self._embedding_key), method)(**kwargs)


@contextlib.contextmanager
def damage_reported() -> Iterator[None]:
    """Turn a failure inside the vector store into :class:`StoreDamaged`, which says how to repair."""
    import chromadb.errors

    try:
        yield
    except (chromadb.errors.ChromaError, sqlite3.DatabaseError, OSError) as exc:
        raise StoreDamaged(detail=f"{type(exc).__name__}: {str(exc)[:200]}") from exc
