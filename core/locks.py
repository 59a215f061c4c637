"""Locks shared by every process that opens one data folder: one per knowledge base, one for
the local Chroma store.

The app, ``python -m core.ingest`` run by cron, and scripts using ``core`` may all work on the
same data folder at once. A job inside one process is kept from a second job on the same
knowledge base by :class:`core.jobs.JobManager`; these locks do the same across processes.

- Every write to a knowledge base (ingest, refresh, rebuild, remove a source or a file,
  rename, delete) holds that base's lock from start to end, so two writers of one base take
  turns, whichever processes they run in.
- Every write to the local Chroma store holds the store's lock, one call at a time (see
  :class:`core.knowledge.vectors.VectorStore` for why one lock for the whole store).

They are ``flock`` locks (through the ``filelock`` package) on files in ``<data>/locks``: the
system drops them when their process dies, so a crash never leaves a base locked. One lock
object serves a path in a process, so a thread may take a lock it already holds (the delete
inside a failed first ingestion); other threads, like other processes, wait.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from core.errors import KnowledgeBaseBusy

LOCKS = "locks"
_POLL_S = 0.2  # how often a waiting job looks at its cancel button


class Locks:
    """The lock files of the data folder ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / LOCKS
        self.folder.mkdir(parents=True, exist_ok=True)

    def kb(self, kb_id: str) -> FileLock:
        """The write lock of one knowledge base."""
        return FileLock(self.folder / f"{kb_id}.lock", is_singleton=True)

    def store(self) -> FileLock:
        """The write lock of the local Chroma store."""
        return FileLock(self.folder / "chroma.lock", is_singleton=True)


@contextlib.contextmanager
def holding(
    lock: FileLock,
    name: str,
    timeout_s: float | None = None,
    on_wait: Callable[[], None] | None = None,
    check: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Hold ``lock`` (of knowledge base ``name``), waiting while someone else holds it.

    ``on_wait`` is called once if the lock is taken, before waiting; ``check`` (a job's cancel
    check) every poll while waiting. Raises :class:`KnowledgeBaseBusy` after ``timeout_s``
    seconds (None: waits until the holder is done).
    """
    if not _acquire(lock, 0):
        if on_wait:
            on_wait()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not _acquire(lock, _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())):
            if check:
                check()
            if deadline is not None and time.monotonic() >= deadline:
                raise KnowledgeBaseBusy(name=name, seconds=timeout_s)
    try:
        yield
    finally:
        lock.release()


def _acquire(lock: FileLock, timeout_s: float) -> bool:
    try:
        lock.acquire(timeout=max(0.0, timeout_s))
    except Timeout:
        return False
    return True
