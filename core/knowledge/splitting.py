"""Split a document's text into overlapping chunks that remember their line numbers."""

from __future__ import annotations

import bisect
import dataclasses
import json

from langchain_text_splitters import RecursiveCharacterTextSplitter

# Paragraphs, lines, then sentence ends: Chinese full-width punctuation needs no trailing
# space, English sentence ends do (so "3.5" and "e.g." stay whole).
SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", ", ", "、", " ", ""]


@dataclasses.dataclass(frozen=True)
class SplitterSettings:
    """How a knowledge base cuts text; part of every chunk id, so changing it re-embeds."""

    chunk_size: int = 500
    chunk_overlap: int = 150

    def signature(self) -> str:
        """A stable text form of the settings."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Piece:
    """A chunk of text with its 1-based first and last line in the file."""

    text: str
    start_line: int
    end_line: int
    heading: str = ""


def split_text(text: str, settings: SplitterSettings) -> list[Piece]:
    r"""Chunks of at most ``chunk_size`` characters, neighbours sharing up to ``chunk_overlap``.

    >>> [p.start_line for p in split_text("a\n" * 3 + "b" * 10, SplitterSettings(8, 0))]
    [1, 4, 4]
    """
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_size,
        chunk_overlap=min(settings.chunk_overlap, settings.chunk_size // 2),
        separators=SEPARATORS,
        keep_separator="end",
        add_start_index=True,
    )
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    pieces = []
    for doc in splitter.create_documents([text]):
        start = doc.metadata["start_index"]
        end = start + len(doc.page_content)
        pieces.append(
            Piece(
                text=doc.page_content,
                start_line=bisect.bisect_left(newlines, start) + 1,
                end_line=bisect.bisect_left(newlines, max(start, end - 1)) + 1,
            )
        )
    return pieces
