"""One file's chunks: read it, split it, and make the records of its chunks.

The ingestion job does this in its reading thread, or, when its embedding model runs on a GPU,
in reading processes (:mod:`core.knowledge.reading_pool`). Everything a reading process needs
travels in a :class:`ChunkPlan`, so both ways run the same function, :func:`file_chunks`.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from collections.abc import Callable

from core.knowledge.loaders import UnsupportedFile, load
from core.knowledge.reading import UnreadableText
from core.knowledge.records import ChunkRecord, FileRecord, KnowledgeBase
from core.knowledge.scanning import FoundFile, SkippedFile
from core.knowledge.splitting import SPLITTER_VERSION, Piece, SplitterSettings, embedded_text, split_document
from core.knowledge.terms import chunk_terms


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
