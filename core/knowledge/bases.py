"""Create, list, rename and delete knowledge bases; open their vector stores.

Every change to a knowledge base holds its lock (:mod:`core.locks`), in whatever process it
runs: the page's actions wait a few seconds for another writer, then say it is busy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import unicodedata
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from core.app_files import AppFiles, inside
from core.embeddings.pool import EmbeddingPool
from core.errors import InvalidName, KnowledgeBaseExists, KnowledgeBaseNotFound, NotAppCreated, StoreDamaged
from core.knowledge import vectors
from core.knowledge.records import ChunkRecord, KnowledgeBase, Records, Source
from core.knowledge.splitting import SplitterSettings
from core.knowledge.vectors import Collection, VectorStore
from core.locks import Locks, holding

MAX_NAME_LENGTH = 64
# How long a rename, delete or removal waits for another writer of the same knowledge base
# before it gives up and says so: long enough for a refresh with nothing new, short enough
# for a page that waits on it.
ACTION_WAIT_S = 5.0


def check_name(name: str) -> str:
    """The cleaned display name; raises :class:`InvalidName` with the reason.

    Names are only labels (collections are named by id), so Chinese and emoji are fine.

    >>> check_name("  课程 笔记 ")
    '课程 笔记'
    """
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise InvalidName(name=name, reason="it is empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidName(name=cleaned[:20] + "…", reason=f"it is longer than {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in cleaned):
        raise InvalidName(name=cleaned, reason="it contains control characters")
    if any(ch in cleaned for ch in "/\\") or cleaned in {".", ".."}:
        raise InvalidName(name=cleaned, reason="it contains / or \\ or is a path")
    return cleaned


@dataclasses.dataclass(frozen=True)
class KnowledgeBaseStats:
    """Figures shown next to a knowledge base; ``size_bytes`` estimates its space on disk."""

    sources: int
    files: int
    chunks: int
    vectors: int
    text_bytes: int
    size_bytes: int


class KnowledgeBases:
    """The knowledge bases of one data folder.

    Files of git and upload sources are kept under ``sources_dir``, one folder per source,
    created and deleted through ``files``; a folder source is the user's and is only read.
    Locks are kept in ``files``' data folder.
    """

    def __init__(
        self, records: Records, store: VectorStore, embeddings: EmbeddingPool, sources_dir: Path, files: AppFiles
    ) -> None:
        self.records = records
        self.store = store
        self.embeddings = embeddings
        self.sources_dir = sources_dir
        self.files = files
        self.locks = Locks(files.data_dir)
        self.action_wait_s = ACTION_WAIT_S

    def writing(
        self,
        kb: KnowledgeBase,
        timeout_s: float | None,
        on_wait: Callable[[], None] | None = None,
        check: Callable[[], None] | None = None,
    ) -> contextlib.AbstractContextManager[None]:
        """Hold ``kb``'s write lock, shared with every process on this data folder; see
        :func:`core.locks.holding` for the arguments. A thread holding it may take it again.
        """
        return holding(self.locks.kb(kb.id), kb.name, timeout_s, on_wait, check)

    def _changing(self, kb: KnowledgeBase) -> contextlib.AbstractContextManager[None]:
        """The write lock for an action someone waits on: given up after ``action_wait_s``."""
        return self.writing(kb, self.action_wait_s)

    def create(
        self, name: str, embedding: str, splitter: SplitterSettings, *, owner: str | None = None, sharing: str = "edit"
    ) -> KnowledgeBase:
        """A new, empty knowledge base; raises if the name is invalid or taken.

        ``owner`` and ``sharing`` are for logins (:mod:`core.access`); without them it belongs to
        nobody and is shared editable, as every knowledge base was before logins.
        """
        name = check_name(name)
        self.embeddings.registry.get(embedding)
        if self.records.kb_by_name(name):
            raise KnowledgeBaseExists(name=name)
        now = time.time()
        kb = KnowledgeBase(
            f"kb-{uuid.uuid4().hex[:16]}", name, embedding, dataclasses.asdict(splitter), now, now, owner, sharing
        )
        self.records.insert_kb(kb)
        return kb

    def set_access(self, kb: KnowledgeBase, owner: str | None, sharing: str) -> KnowledgeBase:
        """Give ``kb`` an owner (None: nobody) and a sharing (private, read or edit)."""
        if sharing not in {"private", "read", "edit"}:
            raise ValueError(f"sharing must be private, read or edit, not {sharing!r}")
        self.records.set_kb_access(kb.id, owner, sharing)
        return self.records.kb_by_id(kb.id) or kb

    def all(self) -> list[KnowledgeBase]:
        """Every knowledge base, by name."""
        return self.records.kbs()

    def get(self, name: str) -> KnowledgeBase:
        """The knowledge base called ``name``; raises :class:`KnowledgeBaseNotFound`."""
        kb = self.records.kb_by_name(name)
        if kb is None:
            raise KnowledgeBaseNotFound(name=name)
        return kb

    def rename(self, kb: KnowledgeBase, new_name: str) -> KnowledgeBase:
        """Give ``kb`` another display name."""
        new_name = check_name(new_name)
        other = self.records.kb_by_name(new_name)
        if other and other.id != kb.id:
            raise KnowledgeBaseExists(name=new_name)
        with self._changing(kb):
            self.records.rename_kb(kb.id, new_name)
        return self.records.kb_by_id(kb.id)

    def delete(self, kb: KnowledgeBase) -> list[NotAppCreated]:
        """Remove ``kb``: its vectors, the app's copies of its git and upload sources, and its
        records. The folders of folder sources are never touched.

        Vectors go first, so a crash leaves a record that can be deleted again. Returns the
        app copies that were refused deletion (see :mod:`core.app_files`) and left in place.
        """
        with self._changing(kb):
            self.store.drop(kb.collection)
            kept = [refusal for source in self.records.sources(kb.id) if (refusal := self._remove_copy(source))]
            self.records.delete_kb(kb.id)
        return kept

    def stats(self, kb: KnowledgeBase) -> KnowledgeBaseStats:
        """Counts of sources, files, chunks and stored vectors, and the space they take."""
        counts = self.records.kb_stats(kb.id)
        with vectors.damage_reported():
            stored = self.collection(kb).count()
        copies = sum(_folder_bytes(self.source_folder(s)) for s in self.records.sources(kb.id))
        # Vectors are float32 and the HNSW graph adds about as much again; texts are kept in the
        # records (and their keyword index) only.
        size = copies + counts["text_bytes"] + stored * self.embeddings.registry.get(kb.embedding).dim * 4 * 2
        return KnowledgeBaseStats(**counts, vectors=stored, size_bytes=size)

    def verify(self, kb: KnowledgeBase) -> dict[str, int]:
        """Compare the records with the vector store: chunks without a vector make the knowledge
        base damaged; vectors without a record are leftovers of an interrupted run.
        """
        recorded = set(self.records.chunk_ids_of_kb(kb.id))
        with vectors.damage_reported():
            stored = set(self.collection(kb).get(include=[])["ids"])
        return {
            "chunks": len(recorded),
            "vectors": len(stored),
            "missing": len(recorded - stored),
            "leftover": len(stored - recorded),
        }

    def repair(self, kb: KnowledgeBase) -> None:
        """Throw the vectors away and forget what was ingested; ingesting the sources again then
        rebuilds the knowledge base (sources and settings are kept).
        """
        with self._changing(kb):
            # A collection too damaged to drop is overwritten: the rebuilt vectors keep their ids.
            with contextlib.suppress(StoreDamaged):
                self.store.drop(kb.collection)
            self.records.forget_files(kb.id)

    def sources(self, kb: KnowledgeBase) -> list[Source]:
        """The sources of ``kb``, oldest first."""
        return self.records.sources(kb.id)

    def source_folder(self, source: Source) -> Path:
        """Where a source's files are read from: the folder itself, or the app's copy of a
        git repository or of uploaded files.
        """
        return Path(source.location) if source.kind == "folder" else inside(self.sources_dir, source.id)

    def remove_file(self, kb: KnowledgeBase, source: Source, path: str) -> int:
        """Remove one file's chunks and leave the file out of later ingestions; returns the count."""
        with self._changing(kb):
            ids = self.records.chunk_ids(source.id, [path])[path]
            if ids:
                self.collection(kb).delete(ids=ids)
            self.records.remove_files(source.id, [path])
            self.records.exclude(source.id, path)
        return len(ids)

    def remove_source(self, kb: KnowledgeBase, source: Source) -> int:
        """Remove a source's chunks, its record and the app's copy of its files (never the folder
        of a folder source); returns the number of chunks removed. Raises
        :class:`NotAppCreated` if the copy is refused deletion; the chunks are gone by then.
        """
        with self._changing(kb):
            ids = self.records.chunk_ids_of_source(source.id)
            for start in range(0, len(ids), 5000):
                self.collection(kb).delete(ids=ids[start : start + 5000])
            self.records.delete_source(source.id)
            if refusal := self._remove_copy(source):
                raise refusal
        return len(ids)

    def discard_if_empty(self, kb: KnowledgeBase) -> bool:
        """Delete ``kb`` (sources and the app's copies included) if it holds no chunks, say
        because its first ingestion failed; returns whether it did.
        """
        if not self.is_empty(kb):
            return False
        self.delete(kb)
        return True

    def is_empty(self, kb: KnowledgeBase) -> bool:
        """Whether ``kb`` holds no chunks."""
        return not self.records.chunk_ids_of_kb(kb.id)

    def _remove_copy(self, source: Source) -> NotAppCreated | None:
        if source.kind == "folder":
            return None
        try:
            self.files.remove(self.source_folder(source))
        except NotAppCreated as refusal:
            return refusal
        return None

    def collection(self, kb: KnowledgeBase) -> Collection:
        """The Chroma collection of ``kb``, for writing vectors computed by ingestion."""
        return self.store.collection(kb.collection, kb.embedding)

    def splitter(self, kb: KnowledgeBase) -> SplitterSettings:
        """The splitter settings ``kb`` records."""
        return SplitterSettings(**kb.splitter)

    def chunk_table(self, kb: KnowledgeBase, path: str | None = None) -> pd.DataFrame:
        """The chunks of ``kb`` (or of one file) as a table for preview."""
        rows = self.records.chunks(kb.id, path)
        columns = [f.name for f in dataclasses.fields(ChunkRecord)]
        frame = pd.DataFrame([dataclasses.astuple(r) for r in rows], columns=columns)
        frame["chars"] = frame["text"].str.len()
        return frame


def _folder_bytes(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
