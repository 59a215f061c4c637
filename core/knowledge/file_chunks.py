"""One file's chunks: read it, split it, and make the records of its chunks.

The ingestion job does this in its reading thread, or, when its embedding model runs on a GPU,
in a pool of reading processes (:class:`ReadingPool`): there one Python thread of reading,
splitting, token counting and keyword terms is several times slower than the GPU embeds.
Everything a reading process needs travels in a :class:`ChunkPlan`, so both ways run the same
function, :func:`file_chunks`.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import multiprocessing
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.knowledge.loaders import UnsupportedFile, load, read_in_process
from core.knowledge.reading import UnreadableText
from core.knowledge.records import ChunkRecord, FileRecord, KnowledgeBase
from core.knowledge.scanning import FoundFile, SkippedFile
from core.knowledge.splitting import SPLITTER_VERSION, Piece, SplitterSettings, embedded_text, split_document
from core.knowledge.terms import chunk_terms

# Below this many files a pool's start (a second or two) costs more than it saves.
POOL_MIN_FILES = 64
POOL_MAX_PROCESSES = 8


@dataclasses.dataclass(frozen=True)
class ChunkPlan:
    """How a knowledge base cuts a file: everything :func:`file_chunks` needs, picklable when
    ``count_tokens`` is (a bound method of a loaded model is not: see ``token_counter``).
    """

    kb: KnowledgeBase
    source_id: str
    splitter: SplitterSettings
    count_tokens: Callable[[str], int] | None = None
    max_tokens: int | None = None

    @property
    def signature(self) -> str:
        """The splitter settings as text, part of every chunk's id."""
        return self.splitter.signature()

    def digest(self, data: bytes) -> str:
        """What decides whether a file changed: its bytes, the splitter and the embedding model."""
        return hashlib.sha256(self.signature.encode() + self.kb.embedding.encode() + data).hexdigest()


@dataclasses.dataclass
class FileChunks:
    """A file read and cut: its record, its chunks and the text embedded for each."""

    record: FileRecord
    chunks: list[ChunkRecord]
    texts: list[str]
    kind: str


@dataclasses.dataclass(frozen=True)
class Unchanged:
    """A file whose bytes and settings match what the knowledge base holds."""


def chunk_id(kb: KnowledgeBase, source_id: str, path: str, text: str, splitter_signature: str) -> str:
    """Deterministic id of a chunk.

    The same text of the same file in the same base, split and embedded the same way, always
    gets the same id.
    """
    key = "\x1f".join((kb.id, source_id, path, splitter_signature, kb.embedding, text))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def page_of(pages: tuple[int, ...], line: int) -> int | None:
    """The 1-based page that ``line`` is on, given the line each page starts on; None without pages.

    >>> page_of((1, 4, 4, 9), 5), page_of((1, 4), 1), page_of((), 3)
    (3, 1, None)
    """
    return (bisect.bisect_right(pages, line) or None) if pages else None


def chunk_page(pages: tuple[int, ...], start: int, end: int) -> int | None:
    """The page holding most of lines ``start``..``end`` (the earlier one on a tie).

    Not the page of the first line: a chunk often begins with the overlap it repeats from the
    page before, and its source would then open on the wrong page.

    >>> chunk_page((1, 10), 8, 20), chunk_page((1, 10), 5, 13), chunk_page((1, 4, 4, 9), 3, 5)
    (2, 1, 3)
    """
    first, last = page_of(pages, start), page_of(pages, end)
    if first is None:
        return None

    def lines_on(page: int) -> int:
        page_end = pages[page] if page < len(pages) else end + 1
        return min(end + 1, page_end) - max(start, pages[page - 1])

    return max(range(first, last + 1), key=lambda page: (lines_on(page), -page))


def is_current(known: FileRecord) -> bool:
    """Whether ``known`` was split by this version of the splitter: an older one may have cut
    chunks of only markup, or cited two chunks at the same lines.
    """
    return known.splitter_version == SPLITTER_VERSION


def file_chunks(
    plan: ChunkPlan, file: FoundFile, known_digest: str | None = None, progress=None
) -> FileChunks | Unchanged | SkippedFile:
    """``file`` read and cut by ``plan``; :class:`Unchanged` when its digest is ``known_digest``,
    a :class:`SkippedFile` when it cannot be read. ``progress`` hears OCR pages (see ``load``).
    """
    try:
        data = file.abs_path.read_bytes()
        digest = plan.digest(data)
        if digest == known_digest:
            return Unchanged()
        document = load(file.abs_path, data, progress)
    except (OSError, UnreadableText, UnsupportedFile) as exc:
        return SkippedFile(file.path, "unreadable", str(exc)[:200])
    pieces = split_document(document.text, plan.splitter, document.language, plan.count_tokens, plan.max_tokens)
    signature = plan.signature
    chunks: dict[str, tuple[ChunkRecord, Piece]] = {}
    for piece in pieces:
        cid = chunk_id(plan.kb, plan.source_id, file.path, embedded_text(piece), signature)
        # The same text twice in one file is stored once, where it first appears.
        if cid not in chunks:
            record = ChunkRecord(
                cid,
                plan.kb.id,
                plan.source_id,
                file.path,
                len(chunks),
                piece.start_line,
                piece.end_line,
                piece.heading,
                piece.text,
                chunk_terms(piece.heading, piece.text),
                *(piece.columns or (None, None)),
                page=chunk_page(document.pages, piece.start_line, piece.end_line),
            )
            chunks[cid] = (record, piece)
    record = FileRecord(plan.source_id, file.path, digest, file.size, len(chunks), SPLITTER_VERSION)
    return FileChunks(
        record, [c for c, _ in chunks.values()], [embedded_text(p) for _, p in chunks.values()], document.kind
    )


class ReadingPool:
    """Reading processes for the files :func:`read_in_process` reads (text, Markdown, code,
    HTML...); PDFs, images and Office files already go to a reader worker of their own, with
    OCR progress, so they stay in the job's reading thread.

    :meth:`map` yields each file's result in the order given; :meth:`close` ends the processes
    at once (a cancel does not wait for files being read).
    """

    def __init__(self, plan: ChunkPlan, processes: int) -> None:
        # forkserver, not fork: the job's process has threads (the embedder's, the app's), and a
        # fork copies any lock one of them holds.
        context = multiprocessing.get_context("forkserver")
        # Only this module, not the default "__main__": a script that ingests without an
        # ``if __name__ == "__main__"`` guard would otherwise run again in the server.
        context.set_forkserver_preload([__name__])
        self._pool = context.Pool(processes, initializer=_start_reader, initargs=(plan,))

    def map(self, files: list[tuple[FoundFile, str | None]]) -> Any:
        """The result of each (file, known digest), in order, computed ahead in the processes:
        an iterator whose ``next(timeout)`` gives up after ``timeout`` seconds (one file per
        task, since with larger tasks ``imap`` returns a plain generator, which cannot wait).
        """
        return self._pool.imap(_read_one, files)

    def close(self) -> None:
        """End the processes now, whatever they are reading."""
        self._pool.terminate()
        self._pool.join()


def pool_size(plan: ChunkPlan, files: int, on_gpu: bool) -> int:
    """How many reading processes a job should use: none unless its model runs on a GPU (on a
    CPU the model is far slower than one reading thread), the files are many, and the token
    counter can be sent to another process.
    """
    if not on_gpu or files < POOL_MIN_FILES or not _picklable(plan):
        return 0
    return max(0, min(POOL_MAX_PROCESSES, (os.cpu_count() or 1) - 2))


def pooled(path: str) -> bool:
    """Whether a reading process reads the file at ``path`` (see :class:`ReadingPool`)."""
    return read_in_process(Path(path))


_plan: ChunkPlan | None = None


def _start_reader(plan: ChunkPlan) -> None:
    global _plan  # one plan per reading process, set once when it starts
    _plan = plan
    # Each process reads one file at a time: a tokenizer or math library starting a thread per
    # core in each of them would fight the job's own threads for the cores. Measured on a
    # 16-core GPU host, 8 processes read the InternLM corpus in 3.4 s this way, 4.5 s without.
    os.environ.update(TOKENIZERS_PARALLELISM="false", RAYON_NUM_THREADS="1", OMP_NUM_THREADS="1")


def _read_one(item: tuple[FoundFile, str | None]) -> FileChunks | Unchanged | SkippedFile:
    assert _plan is not None
    return file_chunks(_plan, item[0], item[1])


def _picklable(plan: ChunkPlan) -> bool:
    try:
        pickle.dumps(plan)
    except Exception:  # noqa: BLE001 - any failure means "read in the job's thread"
        return False
    return True
