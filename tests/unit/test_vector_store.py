"""The vector store of one process keeps up with what other processes write to the same data folder.

Two stores in one process stand for two processes here: each opens its own Chroma client, as
two processes do (tests/integration/test_concurrency.py runs real ones).
"""

from __future__ import annotations

import threading

import numpy as np
from filelock import FileLock

from core.knowledge import vectors
from core.knowledge.vectors import VectorStore

DIM = 8


def _points(start: int, count: int) -> dict:
    rows = np.random.default_rng(start).normal(size=(count, DIM)).astype("float32")
    return {"ids": [f"v{i}" for i in range(start, start + count)], "embeddings": rows.tolist()}


def _add(collection, start: int, count: int, batch: int = 500) -> None:
    for first in range(start, start + count, batch):
        collection.upsert(**_points(first, min(batch, start + count - first)))


def _found(collection) -> set[str]:
    """Every id the vector index can find (not the metadata's count)."""
    query = np.zeros(DIM, dtype="float32").tolist()
    return set(collection.query(query_embeddings=[query], n_results=10_000, include=[])["ids"][0])


def test_a_search_sees_vectors_another_process_added(settings):
    settings.ensure_dirs()
    app, cli = vectors.open_store(settings), vectors.open_store(settings)
    _add(app.collection("kb-1", "m"), 0, 50)
    assert len(_found(app.collection("kb-1", "m"))) == 50  # the app now holds the index in memory

    _add(cli.collection("kb-1", "m"), 50, 50)

    seen = app.collection("kb-1", "m")
    assert _found(seen) == {f"v{i}" for i in range(100)}
    assert len(seen.get(ids=["v75"], include=["embeddings"])["embeddings"]) == 1


def test_writers_taking_turns_lose_no_vectors(settings):
    # Chroma writes an index back to its files every 1,000 changes; a writer whose index in
    # memory was stale would write back one without the other's vectors.
    settings.ensure_dirs()
    app, cli = vectors.open_store(settings), vectors.open_store(settings)
    _add(app.collection("kb-1", "m"), 0, 50)
    _add(cli.collection("kb-1", "m"), 50, 1500)
    _add(app.collection("kb-1", "m"), 1550, 1100)

    fresh = vectors.open_store(settings).collection("kb-1", "m")
    assert fresh.count() == 2650
    assert _found(fresh) == {f"v{i}" for i in range(2650)}


def test_a_dropped_collection_is_gone_for_every_process(settings):
    settings.ensure_dirs()
    app, cli = vectors.open_store(settings), vectors.open_store(settings)
    _add(app.collection("kb-1", "m"), 0, 20)
    assert cli.collection("kb-1", "m").count() == 20

    app.drop("kb-1")

    assert cli.collection("kb-1", "m").count() == 0
    _add(app.collection("kb-1", "m"), 100, 5)
    assert _found(cli.collection("kb-1", "m")) == {f"v{i}" for i in range(100, 105)}


class _Client:
    """A stand-in for a Chroma client whose ``count`` can be held until released."""

    def __init__(self) -> None:
        self.hold: threading.Event | None = None
        self.stopped = False
        self.counting = threading.Event()

    def get_or_create_collection(self, name, **_):
        return self

    @property
    def configuration(self):
        return {"hnsw": {"ef_search": vectors.EF_SEARCH}}

    def count(self):
        self.counting.set()
        if self.hold:
            self.hold.wait(10)
        assert not self.stopped
        return 0

    def upsert(self, **_):
        pass

    def stop(self):
        self.stopped = True


def test_a_replaced_client_is_stopped_only_when_no_call_uses_it(tmp_path):
    clients = [_Client(), _Client()]
    opened = iter(clients)

    def open_client():
        client = next(opened)
        return client, client.stop

    lock, version = FileLock(tmp_path / "store.lock", is_singleton=True), tmp_path / "store.version"
    store = VectorStore(open_client, lock, version)
    store.collection("c", "m").count()  # loads "c": later reads take no lock
    release = clients[0].hold = threading.Event()
    clients[0].counting.clear()
    slow = threading.Thread(target=store.collection("c", "m").count)
    slow.start()
    assert clients[0].counting.wait(10)

    version.write_text("7")  # another process wrote
    store.collection("c", "m").count()
    assert not clients[0].stopped  # still counting in the other thread
    release.set()
    slow.join(10)
    assert clients[0].stopped and not clients[1].stopped
