"""Ingest a source's files into a knowledge base, incrementally and safely re-runnable.

Per file, a hash of its bytes (and of the splitter and embedding settings) and the version
of the splitting code that cut it decide whether anything changed. Chunks have deterministic
ids, so a chunk already in the store is never embedded again and a re-run after a crash or a
cancel adds no duplicates. Reading and splitting run in a second thread while the main one
embeds. Work is written in groups: vectors first, then the records, so the records never
claim a chunk the store lacks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import queue
import threading
import time
from pathlib import Path

from core.jobs import JobContext
from core.knowledge.bases import KnowledgeBases
from core.knowledge.loaders import UnsupportedFile, load
from core.knowledge.reading import UnreadableText
from core.knowledge.records import ChunkRecord, FileRecord, KnowledgeBase, Source
from core.knowledge.scanning import FoundFile, SkippedFile, scan_folder
from core.knowledge.splitting import SPLITTER_VERSION, Piece, embedded_text, split_document
from core.knowledge.terms import chunk_terms

_DONE = object()
_QUEUE_FILES = 64  # files read ahead of the embedder: bounds memory on any corpus size


@dataclasses.dataclass
class IngestReport:
    """What one ingestion run did."""

    files_found: int = 0
    files_unchanged: int = 0
    files_ingested: int = 0
    files_removed: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: list[SkippedFile] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict:
        """A JSON-ready form, for job results."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Pending:
    record: FileRecord
    chunks: list[ChunkRecord]
    texts: list[str]  # what the embedding model reads, per chunk


def chunk_id(kb: KnowledgeBase, source_id: str, path: str, text: str, splitter_signature: str) -> str:
    """Deterministic id of a chunk.

    The same text of the same file in the same base, split and embedded the same way, always
    gets the same id.
    """
    key = "\x1f".join((kb.id, source_id, path, splitter_signature, kb.embedding, text))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class Ingestion:
    """One run of ingesting the files of ``source`` (found under ``root``) into ``kb``.

    ``changed`` may name the only paths that can have changed (a git diff); other files
    already in the manifest are then not even read.
    """

    def __init__(
        self,
        bases: KnowledgeBases,
        kb: KnowledgeBase,
        source: Source,
        root: Path,
        max_file_bytes: int,
        embed_batch: int = 32,
        ctx: JobContext | None = None,
        changed: set[str] | None = None,
    ) -> None:
        self.bases = bases
        self.kb = kb
        self.source = source
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.embed_batch = embed_batch
        # Files are committed to the records in groups of about this many chunks.
        self.group_chunks = embed_batch * 8
        self.ctx = ctx
        self.changed = changed
        self.splitter = bases.splitter(kb)
        self.signature = self.splitter.signature()
        self.embeddings = bases.embeddings.get(kb.embedding)
        self.report = IngestReport()
        self._bytes_done = 0
        self._bytes_total = 0
        self._stop = threading.Event()

    def run(self) -> IngestReport:
        """Ingest everything that changed since the last run; returns what was done."""
        started = time.perf_counter()
        found, skipped = scan_folder(self.root, self.max_file_bytes)
        excluded = set(self.source.excluded)
        skipped += [SkippedFile(f.path, "excluded") for f in found if f.path in excluded]
        found = [f for f in found if f.path not in excluded]
        self.report.files_found = len(found)
        self.report.skipped = sorted(skipped, key=lambda s: s.path)
        self._bytes_total = sum(f.size for f in found)
        manifest = self.bases.records.files(self.source.id)
        collection = self.bases.collection(self.kb)
        prepared: queue.Queue = queue.Queue(maxsize=_QUEUE_FILES)
        reader = threading.Thread(target=self._read_all, args=(found, manifest, prepared), name="ingest-read")
        reader.start()
        try:
            pending: list[_Pending] = []
            while (item := prepared.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                self._check_cancelled()
                if isinstance(item, _Pending):
                    pending.append(item)
                else:
                    self._bytes_done += item  # an unchanged file's size
                if sum(len(p.chunks) for p in pending) >= self.group_chunks:
                    self._flush(collection, pending)
                    pending = []
                self._progress()
            self._check_cancelled()
            self._flush(collection, pending)
        finally:
            self._stop.set()
            _drain(prepared)
            reader.join()
        self._remove_missing(collection, manifest, {f.path for f in found})
        self.report.seconds = time.perf_counter() - started
        self._progress()
        return self.report

    def _read_all(self, found: list[FoundFile], manifest: dict[str, FileRecord], out: queue.Queue) -> None:
        _lower_priority()
        try:
            for file in found:
                if self._stop.is_set():
                    return
                known = manifest.get(file.path)
                if self.changed is not None and file.path not in self.changed and known and _current(known):
                    self.report.files_unchanged += 1
                    item = None
                else:
                    item = self._prepare(file, manifest)
                _put(out, item if item is not None else file.size, self._stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the embedding thread, which raises it
            _put(out, exc, self._stop)
        finally:
            _put(out, _DONE, self._stop)

    def _prepare(self, file: FoundFile, manifest: dict[str, FileRecord]) -> _Pending | None:
        try:
            data = file.abs_path.read_bytes()
            digest = hashlib.sha256(self.signature.encode() + self.kb.embedding.encode() + data).hexdigest()
            known = manifest.get(file.path)
            if known and _current(known) and known.sha256 == digest:
                self.report.files_unchanged += 1
                return None
            document = load(file.abs_path, data)
        except (OSError, UnreadableText, UnsupportedFile) as exc:
            self.report.skipped.append(SkippedFile(file.path, "unreadable", str(exc)[:200]))
            return None
        self.report.kinds[document.kind] = self.report.kinds.get(document.kind, 0) + 1
        pieces = split_document(
            document.text,
            self.splitter,
            document.language,
            getattr(self.embeddings, "count_tokens", None),
            getattr(self.embeddings, "max_tokens", None),
        )
        chunks: dict[str, tuple[ChunkRecord, Piece]] = {}
        for piece in pieces:
            cid = chunk_id(self.kb, self.source.id, file.path, embedded_text(piece), self.signature)
            # The same text twice in one file is stored once, where it first appears.
            if cid not in chunks:
                record = ChunkRecord(
                    cid,
                    self.kb.id,
                    self.source.id,
                    file.path,
                    len(chunks),
                    piece.start_line,
                    piece.end_line,
                    piece.heading,
                    piece.text,
                    chunk_terms(piece.heading, piece.text),
                    *(piece.columns or (None, None)),
                )
                chunks[cid] = (record, piece)
        record = FileRecord(self.source.id, file.path, digest, file.size, len(chunks), SPLITTER_VERSION)
        return _Pending(record, [c for c, _ in chunks.values()], [embedded_text(p) for _, p in chunks.values()])

    def _flush(self, collection, pending: list[_Pending]) -> None:
        if not pending:
            return
        records = self.bases.records
        stored = records.chunk_ids(self.source.id, [p.record.path for p in pending])
        old_ids = {i for ids in stored.values() for i in ids}
        fresh = [(c, t) for p in pending for c, t in zip(p.chunks, p.texts, strict=True)]
        new_ids = {c.id for c, _ in fresh}
        candidates = [(c, t) for c, t in fresh if c.id not in old_ids]
        # After a crash between writing vectors and records, some vectors already exist.
        present = set(collection.get(ids=[c.id for c, _ in candidates], include=[])["ids"]) if candidates else set()
        # Batches of texts of similar length waste less work on padding (about 13% on a CPU).
        to_embed = sorted(((c, t) for c, t in candidates if c.id not in present), key=lambda pair: len(pair[1]))
        group_bytes = sum(p.record.size for p in pending)
        credited = 0
        vectors: dict[str, list[float]] = {}
        try:
            for start in range(0, len(to_embed), self.embed_batch):
                self._check_cancelled()
                # Identical texts (copied READMEs, licence headers) are embedded once.
                batch = dict.fromkeys(t for _, t in to_embed[start : start + self.embed_batch])
                unique = [t for t in batch if t not in vectors]
                vectors.update(zip(unique, self.embeddings.embed_documents(unique), strict=True))
                self.report.chunks_embedded += len(unique)
                credit = group_bytes * min(start + self.embed_batch, len(to_embed)) // len(to_embed)
                self._bytes_done += credit - credited
                credited = credit
                self._progress()
        finally:
            # One write per group is cheaper than one per batch; on a cancel, what was embedded
            # is still written, so the next run does not embed it again.
            done = [(c, t) for c, t in to_embed if t in vectors]
            if done:
                collection.upsert(
                    ids=[c.id for c, _ in done],
                    embeddings=[vectors[t] for _, t in done],
                    documents=[t for _, t in done],
                    metadatas=[{"source_id": c.source_id, "path": c.path} for c, _ in done],
                )
        self._bytes_done += group_bytes - credited
        stale = sorted(old_ids - new_ids)
        if stale:
            collection.delete(ids=stale)
        records.replace_files(self.kb.id, self.source.id, [(p.record, p.chunks) for p in pending])
        self.report.files_ingested += len(pending)
        self.report.chunks_added += len(candidates)
        self.report.chunks_removed += len(stale)

    def _remove_missing(self, collection, manifest: dict[str, FileRecord], present: set[str]) -> None:
        gone = sorted(set(manifest) - present)
        if not gone:
            return
        ids = [i for ids in self.bases.records.chunk_ids(self.source.id, gone).values() for i in ids]
        if ids:
            collection.delete(ids=ids)
        self.bases.records.remove_files(self.source.id, gone)
        self.report.files_removed += len(gone)
        self.report.chunks_removed += len(ids)

    def _check_cancelled(self) -> None:
        if self.ctx:
            self.ctx.check_cancelled()

    def _progress(self) -> None:
        if self.ctx:
            self.ctx.progress(
                done=self._bytes_done,
                total=self._bytes_total,
                unit="bytes",
                files_total=self.report.files_found,
                files_done=self.report.files_ingested + self.report.files_unchanged,
                chunks_embedded=self.report.chunks_embedded,
                skipped=len(self.report.skipped),
            )


def _current(known: FileRecord) -> bool:
    """Whether ``known`` was split by this version of the splitter: an older one may have cut
    chunks of only markup, or cited two chunks at the same lines.
    """
    return known.splitter_version == SPLITTER_VERSION


def _lower_priority() -> None:
    """Let the embedding threads have the CPU first: reading only has to keep ahead of them."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)  # Linux: per thread


def _put(out: queue.Queue, item: object, stop: threading.Event) -> None:
    """Put ``item``, giving up when the embedding side has stopped listening."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


def _drain(items: queue.Queue) -> None:
    while True:
        try:
            items.get_nowait()
        except queue.Empty:
            return
