"""Ingest a source's files into a knowledge base, incrementally and safely re-runnable.

Per file, a hash of its bytes (and of the splitter and embedding settings) and the version
of the splitting code that cut it decide whether anything changed. Chunks have deterministic
ids, so a chunk already in the store is never embedded again and a re-run after a crash or a
cancel adds no duplicates. Three stages overlap: a thread reads and splits files (on a GPU,
text files in a pool of processes, whose results a second thread hands on), the job's
thread embeds them, and a third writes each embedded group (vectors first, then the records,
so the records never claim a chunk the store lacks) while the next group is embedded. On a GPU
the writes (Chroma's index above all) would otherwise take as long as the embedding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import threading
import time
from pathlib import Path

from core.errors import JobCancelled
from core.jobs import JobContext
from core.knowledge.bases import KnowledgeBases
from core.knowledge.file_chunks import ChunkPlan, FileChunks, Unchanged, file_chunks, is_current
from core.knowledge.reading_pool import ReadingPool, pool_size, pooled
from core.knowledge.records import ChunkRecord, FileRecord, KnowledgeBase, Source
from core.knowledge.scanning import FoundFile, SkippedFile, scan_folder

_DONE = object()
_POLL_SECONDS = 0.2  # how soon a waiting thread notices that the job stopped
_QUEUE_FILES = 64  # files read ahead of the embedder: bounds memory on any corpus size
# Chunks embedded per call on a GPU, whatever the settings say: a small model is idle between
# calls of the CPU default (32), and 256 passages of at most 512 tokens fit any CUDA GPU.
GPU_BATCH = 256


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
class _Write:
    """One group's writes: the vectors embedded, then (unless the group was cut short) the
    records of its files and the removal of their chunks that are gone.
    """

    vectors: list[tuple[ChunkRecord, str, list[float]]]
    pending: list[FileChunks]
    stale: list[str]
    added: int
    complete: bool


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
        self.ctx = ctx
        self.changed = changed
        self.embeddings = bases.embeddings.get(kb.embedding)
        self.plan = ChunkPlan(
            kb,
            source.id,
            bases.splitter(kb),
            # A picklable counter where the model has one, so reading processes can count too.
            getattr(self.embeddings, "token_counter", None) or getattr(self.embeddings, "count_tokens", None),
            getattr(self.embeddings, "max_tokens", None),
        )
        self.on_gpu = str(getattr(self.embeddings, "device", "")).startswith("cuda")
        self.embed_batch = max(embed_batch, GPU_BATCH) if self.on_gpu else embed_batch
        # Files are committed to the records in groups of about this many chunks.
        self.group_chunks = self.embed_batch * 8
        self.report = IngestReport()
        self._bytes_done = 0
        self._bytes_total = 0
        self._files_embedded = 0  # files whose chunks are all embedded (written or not yet)
        self._ocr = ("", 0, 0)  # the file being read by OCR, its pages done and to do
        self._stop = threading.Event()
        self._counting = threading.Lock()

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
        writer = _Writer(lambda write: self._write(collection, write))
        try:
            pending: list[FileChunks] = []
            while (item := prepared.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                self._check_cancelled()
                if isinstance(item, FileChunks):
                    pending.append(item)
                else:
                    self._bytes_done += item  # an unchanged file's size
                if sum(len(p.chunks) for p in pending) >= self.group_chunks:
                    self._embed(collection, pending, writer)
                    pending = []
                self._progress()
            self._check_cancelled()
            self._embed(collection, pending, writer)
        finally:
            self._stop.set()
            _drain(prepared)
            reader.join()
            writer.close()  # every group embedded is written, also on a cancel or an error
        self._remove_missing(collection, manifest, {f.path for f in found})
        self.report.seconds = time.perf_counter() - started
        self._progress()
        return self.report

    def _read_all(self, found: list[FoundFile], manifest: dict[str, FileRecord], out: queue.Queue) -> None:
        _lower_priority()
        pool = forwarder = None
        try:
            todo = []
            for file in found:
                known = manifest.get(file.path)
                if self.changed is not None and file.path not in self.changed and known and is_current(known):
                    todo.append((file, None))  # unchanged by the source's own account: not even read
                else:
                    todo.append((file, known.sha256 if known and is_current(known) else ""))
            pooled_files = [(f, d) for f, d in todo if d is not None and pooled(f.path)]
            if processes := pool_size(self.plan, len(pooled_files), self.on_gpu):
                pool = ReadingPool(self.plan, processes, pooled_files)
                # The pool's results go out from a thread of their own, so that a file read here
                # (a document reader starting, OCR) never holds them back while the GPU waits.
                forwarder = threading.Thread(target=self._forward, args=(pooled_files, pool, out), name="ingest-pool")
                forwarder.start()
                in_pool = {f.path for f, _ in pooled_files}
                todo = [(f, d) for f, d in todo if f.path not in in_pool]
            for file, digest in todo:
                if self._stop.is_set():
                    return
                result = Unchanged() if digest is None else self._read(file, digest)
                _put(out, self._account(file, result), self._stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the embedding thread, which raises it
            _put(out, exc, self._stop)
        finally:
            if forwarder is not None:
                forwarder.join()  # it stops within a poll once the embedding side has stopped
            if pool is not None:
                pool.close()
            _put(out, _DONE, self._stop)

    def _forward(self, files: list[tuple[FoundFile, str | None]], results: ReadingPool, out: queue.Queue) -> None:
        """Hand on the reading pool's result for each of ``files``, in order, until stopped."""
        _lower_priority()
        try:
            for file, _ in files:
                while True:
                    if self._stop.is_set():
                        return
                    try:
                        result = results.next(timeout=_POLL_SECONDS)
                        break
                    except TimeoutError:
                        continue
                _put(out, self._account(file, result), self._stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the embedding thread, which raises it
            _put(out, exc, self._stop)

    def _read(self, file: FoundFile, known_digest: str) -> FileChunks | Unchanged | SkippedFile:
        """One file read in this thread, with OCR pages shown and a cancel heard within a file."""
        try:
            return file_chunks(self.plan, file, known_digest or None, self._reading(file.path))
        finally:
            if self._ocr[2]:
                self._ocr = ("", 0, 0)
                self._progress()

    def _account(self, file: FoundFile, result: FileChunks | Unchanged | SkippedFile) -> FileChunks | int:
        """``result`` counted in the report; the file's chunks, or its size when it adds none."""
        with self._counting:  # the reading thread and the pool's forwarder both count
            return self._count(file, result)

    def _count(self, file: FoundFile, result: FileChunks | Unchanged | SkippedFile) -> FileChunks | int:
        if isinstance(result, FileChunks):
            self.report.kinds[result.kind] = self.report.kinds.get(result.kind, 0) + 1
            return result
        if isinstance(result, Unchanged):
            self.report.files_unchanged += 1
        else:
            self.report.skipped.append(result)
        return file.size

    def _reading(self, path: str):
        """What hears a file's reading: OCR pages shown as progress, a cancel noticed at once.

        A file is the unit of resume: a scanned PDF cancelled halfway is read again from its first
        page next time, and nothing of it is stored until all of it is read.
        """

        def progress(done: int, total: int) -> None:
            if self._stop.is_set() or (self.ctx is not None and self.ctx.cancelled):
                raise JobCancelled()
            if total and (path, done, total) != self._ocr:
                self._ocr = (path, done, total)
                self._progress()

        return progress

    def _embed(self, collection, pending: list[FileChunks], writer: _Writer) -> None:
        """Embed one group of files and hand its writes to ``writer``."""
        if not pending:
            return
        stored = self.bases.records.chunk_ids(self.source.id, [p.record.path for p in pending])
        old_ids = {i for ids in stored.values() for i in ids}
        fresh = [(c, t) for p in pending for c, t in zip(p.chunks, p.texts, strict=True)]
        new_ids = {c.id for c, _ in fresh}
        candidates = [(c, t) for c, t in fresh if c.id not in old_ids]
        # After a crash between writing vectors and records, some vectors already exist.
        present = set(collection.get(ids=[c.id for c, _ in candidates], include=[])["ids"]) if candidates else set()
        # Batches of texts of similar length waste less work on padding (about 13% on a CPU).
        to_embed = sorted(((c, t) for c, t in candidates if c.id not in present), key=lambda pair: len(pair[1]))
        waiting = {id(p): sum(c.id not in old_ids and c.id not in present for c in p.chunks) for p in pending}
        owner = {c.id: id(p) for p in pending for c in p.chunks}
        self._files_embedded += sum(count == 0 for count in waiting.values())
        group_bytes = sum(p.record.size for p in pending)
        credited = 0
        vectors: dict[str, list[float]] = {}
        try:
            for start in range(0, len(to_embed), self.embed_batch):
                self._check_cancelled()
                chunks = to_embed[start : start + self.embed_batch]
                # Identical texts (copied READMEs, licence headers) are embedded once.
                unique = [t for t in dict.fromkeys(t for _, t in chunks) if t not in vectors]
                vectors.update(zip(unique, self.embeddings.embed_documents(unique), strict=True))
                self.report.chunks_embedded += len(unique)
                for chunk, _ in chunks:
                    waiting[owner[chunk.id]] -= 1
                    self._files_embedded += waiting[owner[chunk.id]] == 0
                credit = group_bytes * min(start + self.embed_batch, len(to_embed)) // len(to_embed)
                self._bytes_done += credit - credited
                credited = credit
                self._progress()
        finally:
            # On a cancel, what was embedded is still written, so the next run does not embed it
            # again; the records are written only for a whole group.
            done = [(c, t, vectors[t]) for c, t in to_embed if t in vectors]
            complete = len(done) == len(to_embed)
            writer.submit(_Write(done, pending, sorted(old_ids - new_ids), len(candidates), complete))
        self._bytes_done += group_bytes - credited

    def _write(self, collection, write: _Write) -> None:
        """Write one group (in the writer thread): vectors, then records."""
        if write.vectors:
            # The chunk texts live in the records (and their keyword index); Chroma keeps only
            # vectors, which halves its work per chunk.
            collection.upsert(
                ids=[c.id for c, _, _ in write.vectors],
                embeddings=[v for _, _, v in write.vectors],
                metadatas=[{"source_id": c.source_id, "path": c.path} for c, _, _ in write.vectors],
            )
        if not write.complete:
            return
        if write.stale:
            collection.delete(ids=write.stale)
        self.bases.records.replace_files(self.kb.id, self.source.id, [(p.record, p.chunks) for p in write.pending])
        self.report.files_ingested += len(write.pending)
        self.report.chunks_added += write.added
        self.report.chunks_removed += len(write.stale)
        self._progress()

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
                files_done=self._files_embedded + self.report.files_unchanged,
                chunks_embedded=self.report.chunks_embedded,
                skipped=len(self.report.skipped),
                ocr_file=self._ocr[0],
                ocr_pages_done=self._ocr[1],
                ocr_pages_total=self._ocr[2],
            )


class _Writer:
    """A thread that runs ``write`` on each group handed to it, one group behind the embedding:
    :meth:`submit` waits while a group is still being written, so at most two groups are in
    memory. The first error is raised once in the embedding thread, at its next :meth:`submit`
    or at :meth:`close`; no group after a failed one is written.
    """

    def __init__(self, write) -> None:
        self._write = write
        self._groups: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._raised = False
        self._thread = threading.Thread(target=self._run, name="ingest-write")
        self._thread.start()

    def _run(self) -> None:
        while (group := self._groups.get()) is not _DONE:
            if self._error is None:
                try:
                    self._write(group)
                except BaseException as exc:  # noqa: BLE001 - raised in the embedding thread
                    self._error = exc

    def submit(self, group: _Write) -> None:
        """Queue ``group`` for writing; raises a failure of an earlier group's writes."""
        self._groups.put(group)
        self._raise()

    def close(self) -> None:
        """Wait until every queued group is written; raises a failure not raised yet."""
        self._groups.put(_DONE)
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error


def _lower_priority() -> None:
    """Let the embedding threads have the CPU first: reading only has to keep ahead of them."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)  # Linux: per thread


def _put(out: queue.Queue, item: object, stop: threading.Event) -> None:
    """Put ``item``, giving up when the embedding side has stopped listening."""
    while not stop.is_set():
        try:
            out.put(item, timeout=_POLL_SECONDS)
            return
        except queue.Full:
            continue


def _drain(items: queue.Queue) -> None:
    while True:
        try:
            items.get_nowait()
        except queue.Empty:
            return
