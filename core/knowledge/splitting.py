"""Split a document into overlapping chunks that know their lines and their heading path.

Markdown (and what loaders turn into Markdown: HTML, Word files, notebooks) is cut into
sections at its headings first; each chunk remembers the heading path it sits under. Code is
cut at class and function boundaries of its language; prose at paragraphs, lines and sentence
ends, Chinese punctuation included. Chunk size is counted in characters or in the embedding
model's tokens, and a chunk is never longer than the model reads: longer ones are cut again.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import re
from collections.abc import Callable
from typing import Literal

from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

# Paragraphs, lines, then sentence ends: Chinese full-width punctuation needs no trailing
# space, English sentence ends do (so "3.5" and "e.g." stay whole).
PROSE_SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", ", ", "、", " ", ""]
_SENTENCE_TAIL = [re.escape(s) for s in PROSE_SEPARATORS[2:]]
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")

TokenCounter = Callable[[str], int]


@dataclasses.dataclass(frozen=True)
class SplitterSettings:
    """How a knowledge base cuts text; part of every chunk id, so changing it re-embeds.

    ``unit`` says whether sizes count characters or the embedding model's tokens.
    """

    chunk_size: int = 500
    chunk_overlap: int = 150
    unit: Literal["chars", "tokens"] = "chars"

    def signature(self) -> str:
        """A stable text form of the settings."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Piece:
    """A chunk with its 1-based first and last line in the document and its heading path."""

    text: str
    start_line: int
    end_line: int
    heading: str = ""


def split_document(
    text: str,
    settings: SplitterSettings,
    language: str | None = None,
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
) -> list[Piece]:
    r"""Chunks of ``text``: Markdown by sections, code by ``language``, anything else as prose.

    With ``count_tokens`` and ``max_tokens``, no chunk (heading path included, as it is
    embedded with the chunk) is longer than ``max_tokens``.

    >>> doc = "# Guide\n\nIntro.\n\n## Install\n\npip install x\n"
    >>> [(p.heading, p.start_line) for p in split_document(doc, SplitterSettings(40, 0), "markdown")]
    [('Guide', 1), ('Guide > Install', 5)]
    """
    length = count_tokens if settings.unit == "tokens" and count_tokens else len
    splitter = _splitter(settings, language, length)
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    pieces: list[Piece] = []
    for offset, section, heading in _sections(text, language):
        # Every chunk of a section is checked against the budget left after its heading.
        heading_tokens = count_tokens(heading) if count_tokens and heading else 0
        for chunk in splitter.create_documents([section]):
            start = offset + chunk.metadata["start_index"]
            pieces.extend(
                _clamp(chunk.page_content, start, heading, heading_tokens, newlines, count_tokens, max_tokens)
            )
    return pieces


def embedded_text(piece: Piece) -> str:
    r"""What the embedding model reads for a chunk: its heading path, then its text.

    >>> embedded_text(Piece("pip install x", 7, 7, "Guide > Install"))
    'Guide > Install\npip install x'
    """
    return f"{piece.heading}\n{piece.text}" if piece.heading else piece.text


def _splitter(settings: SplitterSettings, language: str | None, length: Callable[[str], int]):
    overlap = min(settings.chunk_overlap, settings.chunk_size // 2)
    if language and language in {lang.value for lang in Language}:
        separators = RecursiveCharacterTextSplitter.get_separators_for_language(Language(language))
        # Before the last resort (single characters), try sentence ends, Chinese ones included.
        separators = [*separators[:-1], *_SENTENCE_TAIL, ""]
        regex = True
    else:
        separators, regex = PROSE_SEPARATORS, False
    return RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_size,
        chunk_overlap=overlap,
        separators=separators,
        is_separator_regex=regex,
        keep_separator="end" if not regex else "start",
        add_start_index=True,
        length_function=length,
    )


def _sections(text: str, language: str | None) -> list[tuple[int, str, str]]:
    """(character offset, text, heading path) of each Markdown section; the whole text otherwise."""
    if language != "markdown":
        return [(0, text, "")]
    sections: list[tuple[int, str, str]] = []
    path: list[tuple[int, str]] = []
    start, heading, offset, fenced = 0, "", 0, False
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line.rstrip("\n"))
        if match:
            if text[start:offset].strip():
                sections.append((start, text[start:offset], heading))
            level = len(match.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, match.group(2))]
            heading = " > ".join(title for _, title in path)
            start = offset
        offset += len(line)
    if text[start:].strip():
        sections.append((start, text[start:], heading))
    return sections


def _clamp(
    text: str,
    start: int,
    heading: str,
    heading_tokens: int,
    newlines: list[int],
    count_tokens: TokenCounter | None,
    max_tokens: int | None,
) -> list[Piece]:
    """The chunk as a piece, or cut again into pieces the embedding model reads whole."""
    parts = [(text, start)]
    if count_tokens and max_tokens:
        parts = _fit(text, start, max(max_tokens - heading_tokens, 16), count_tokens)
    return [
        Piece(
            part,
            bisect.bisect_left(newlines, at) + 1,
            bisect.bisect_left(newlines, max(at, at + len(part) - 1)) + 1,
            heading,
        )
        for part, at in parts
    ]


def _fit(text: str, start: int, budget: int, count_tokens: TokenCounter) -> list[tuple[str, int]]:
    """``text`` (at ``start``) cut at separators into parts of at most ``budget`` tokens.

    Parts are cut by characters at this text's own rate of characters per token, then
    checked: the tokenizer runs a few times per part instead of once per candidate split.
    """
    tokens = count_tokens(text)
    chars = int(len(text) * budget / tokens * 0.9) if tokens > budget else len(text)
    if chars >= len(text) or chars < 1:
        return [(text, start)]
    cutter = RecursiveCharacterTextSplitter(
        chunk_size=chars, chunk_overlap=0, separators=PROSE_SEPARATORS, keep_separator="end", add_start_index=True
    )
    return [
        part
        for doc in cutter.create_documents([text])
        for part in _fit(doc.page_content, start + doc.metadata["start_index"], budget, count_tokens)
    ]
