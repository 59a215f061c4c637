"""Ingest a source folder into a knowledge base, incrementally and safely re-runnable.

Per file, a hash of its bytes (and of the splitter and embedding settings) decides whether
anything changed. Chunks have deterministic ids, so a chunk already in the store is never
embedded again and a re-run after a crash or a cancel adds no duplicates. Work is written
in batches: vectors first, then the records, so the records never claim a chunk the
vector store lacks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import uuid
from pathlib import Path

from core.errors import FolderNotFound
from core.jobs import JobContext
from core.knowledge.bases import KnowledgeBases
from core.knowledge.reading import UnreadableText, decode
from core.knowledge.records import ChunkRecord, FileRecord, KnowledgeBase, Source
from core.knowledge.scanning import FoundFile, SkippedFile, scan_folder
from core.knowledge.splitting import split_text


@dataclasses.dataclass
class IngestReport:
    """What one ingestion run did."""

    files_found: int = 0
    files_unchanged: int = 0
    files_ingested: int = 0
    files_removed: int = 0
    files_prepared: int = 0
    chunks_added: int = 0
    chunks_embedded: int = 0
    chunks_removed: int = 0
    seconds: float = 0.0
    skipped: list[SkippedFile] = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict:
        """A JSON-ready form, for job results."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Pending:
    record: FileRecord
    chunks: list[ChunkRecord]


def chunk_id(kb: KnowledgeBase, source_id: str, path: str, text: str, splitter_signature: str) -> str:
    """Deterministic id of a chunk.

    The same text of the same file in the same base, split and embedded the same way, always
    gets the same id.
    """
    key = "\x1f".join((kb.id, source_id, path, splitter_signature, kb.embedding, text))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class FolderIngestion:
    """One run of ingesting ``folder`` into ``kb``."""

    def __init__(
        self,
        bases: KnowledgeBases,
        kb: KnowledgeBase,
        folder: Path,
        max_file_bytes: int,
        embed_batch: int = 32,
        ctx: JobContext | None = None,
    ) -> None:
        self.bases = bases
        self.kb = kb
        self.folder = folder
        self.max_file_bytes = max_file_bytes
        self.embed_batch = embed_batch
        # Files are committed to the records in groups of about this many chunks.
        self.group_chunks = embed_batch * 8
        self.ctx = ctx
        self.splitter = bases.splitter(kb)
        self.signature = self.splitter.signature()
        self.report = IngestReport()
        self._started = 0.0
        self._bytes_done = 0
        self._bytes_total = 0

    def run(self) -> IngestReport:
        """Ingest everything that changed since the last run; returns what was done."""
        self._started = time.perf_counter()
        folder = self.folder.expanduser()
        if not folder.is_dir():
            raise FolderNotFound(path=str(self.folder))
        records = self.bases.records
        source = records.upsert_source(
            Source(uuid.uuid4().hex[:16], self.kb.id, "folder", str(folder.resolve()), None, None, time.time(), None)
        )
        found, skipped = scan_folder(folder, self.max_file_bytes)
        self.report.files_found = len(found)
        self.report.skipped = skipped
        self._bytes_total = sum(f.size for f in found)
        manifest = records.files(source.id)
        store = self.bases.store(self.kb)
        pending: list[_Pending] = []
        for file in found:
            self._check_cancelled()
            item = self._prepare(file, source.id, manifest)
            if item:
                pending.append(item)
            else:
                self._bytes_done += file.size
            if sum(len(p.chunks) for p in pending) >= self.group_chunks:
                self._flush(store, source.id, pending)
                pending = []
            self._progress()
        self._flush(store, source.id, pending)
        self._remove_missing(store, source.id, manifest, {f.path for f in found})
        records.mark_source_updated(source.id)
        self.report.seconds = time.perf_counter() - self._started
        self._progress()
        return self.report

    def _prepare(self, file: FoundFile, source_id: str, manifest: dict[str, FileRecord]) -> _Pending | None:
        try:
            data = file.abs_path.read_bytes()
            digest = hashlib.sha256(self.signature.encode() + self.kb.embedding.encode() + data).hexdigest()
            known = manifest.get(file.path)
            if known and known.sha256 == digest:
                self.report.files_unchanged += 1
                return None
            text, _ = decode(data)
        except (OSError, UnreadableText) as exc:
            self.report.skipped.append(SkippedFile(file.path, "unreadable", str(exc)))
            return None
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        chunks: dict[str, ChunkRecord] = {}
        for piece in split_text(text, self.splitter):
            cid = chunk_id(self.kb, source_id, file.path, piece.text, self.signature)
            # The same text twice in one file is stored once, where it first appears.
            chunks.setdefault(
                cid,
                ChunkRecord(
                    cid,
                    self.kb.id,
                    source_id,
                    file.path,
                    len(chunks),
                    piece.start_line,
                    piece.end_line,
                    piece.heading,
                    piece.text,
                ),
            )
        record = FileRecord(source_id, file.path, digest, file.size, len(chunks))
        self.report.files_prepared += 1
        return _Pending(record, list(chunks.values()))

    def _flush(self, store, source_id: str, pending: list[_Pending]) -> None:
        if not pending:
            return
        records = self.bases.records
        old_ids = {i for ids in records.chunk_ids(source_id, [p.record.path for p in pending]).values() for i in ids}
        new_chunks = [c for p in pending for c in p.chunks]
        new_ids = {c.id for c in new_chunks}
        candidates = [c for c in new_chunks if c.id not in old_ids]
        # After a crash between writing vectors and records, some vectors already exist.
        present = set(store.get(ids=[c.id for c in candidates], include=[])["ids"]) if candidates else set()
        to_embed = [c for c in candidates if c.id not in present]
        group_bytes = sum(p.record.size for p in pending)
        credited = 0
        for start in range(0, len(to_embed), self.embed_batch):
            self._check_cancelled()
            part = to_embed[start : start + self.embed_batch]
            store.add_texts(
                texts=[c.text for c in part],
                metadatas=[{"source_id": c.source_id, "path": c.path} for c in part],
                ids=[c.id for c in part],
            )
            self.report.chunks_embedded += len(part)
            credit = group_bytes * (start + len(part)) // len(to_embed)
            self._bytes_done += credit - credited
            credited = credit
            self._progress()
        self._bytes_done += group_bytes - credited
        stale = sorted(old_ids - new_ids)
        if stale:
            store.delete(ids=stale)
        records.replace_files(self.kb.id, source_id, [(p.record, p.chunks) for p in pending])
        self.report.files_ingested += len(pending)
        self.report.chunks_added += len(candidates)
        self.report.chunks_removed += len(stale)

    def _remove_missing(self, store, source_id: str, manifest: dict[str, FileRecord], present: set[str]) -> None:
        gone = sorted(set(manifest) - present)
        if not gone:
            return
        ids = [i for ids in self.bases.records.chunk_ids(source_id, gone).values() for i in ids]
        if ids:
            store.delete(ids=ids)
        self.bases.records.remove_files(source_id, gone)
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
