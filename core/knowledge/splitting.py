"""Split a document into overlapping chunks that know their lines and their heading path.

Markdown (and what loaders turn into Markdown: HTML, Word, spreadsheets, slides, e-books,
notebooks) is cut into sections at its headings first; each chunk remembers the heading path
it sits under. Code is cut at class and function boundaries of its language; prose at
paragraphs, lines and sentence ends, Chinese punctuation included. A Markdown table stays whole
in a chunk with its caption, or is cut between rows into chunks that each repeat its caption
and header (table_split.py). Chunk size is counted in characters or in the embedding model's
tokens, and a chunk is never longer than the model reads: longer ones are cut again. A chunk
of nothing but markup (a lone code fence, a heading, a title's underline) is merged into a
neighbour, and chunks that span the same lines also know their columns, so no two
chunks of a file are cited at the same place.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import json
import re
from collections.abc import Callable
from typing import Literal

from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

from core.knowledge.chunk_content import FENCE, has_content
from core.knowledge.table_split import find_tables, split_table

SPLITTER_VERSION = 3
"""Raised whenever a change here changes the chunks of unchanged text and settings: files
split by an older version are split again on the next refresh of their knowledge base."""

# Paragraphs, lines, then sentence ends: Chinese full-width punctuation needs no trailing
# space, English sentence ends do (so "3.5" and "e.g." stay whole).
PROSE_SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", ", ", "、", " ", ""]
_SENTENCE_TAIL = [re.escape(s) for s in PROSE_SEPARATORS[2:]]
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE_MARK = re.compile(r"^[ \t]*(```|~~~)", re.MULTILINE)
# LangChain cuts rst right before an underline, parting a title from it; these cut before the
# title (and its overline, if any) instead.
_RST_SEPARATORS = [
    *(rf"\n(?=(?:{mark}{{3,}}\n)?[^\n]+\n{mark}{{3,}}(?:\n|$))" for mark in ("=", "-", r"\*", "~", r"\^", "#")),
    r"\n\n(?=\.\. )",
    "\n\n",
    "\n",
]
_MARKUP_LANGUAGES = frozenset({"markdown", "rst"})
# Markdown tables are kept whole or cut between rows with their header (core/knowledge/table_split.py)
# in Markdown and in plain text (PDF pages), not in code, where "|" starts other things.
_TABLE_LANGUAGES = frozenset({"markdown", None})

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
    """A chunk with its 1-based first and last line in the document and its heading path.

    ``start`` is its character offset in the document. ``columns`` (its 1-based first and last
    column) is set only where another chunk spans the same lines, to tell the two apart.
    """

    text: str
    start_line: int
    end_line: int
    heading: str = ""
    start: int = 0
    columns: tuple[int, int] | None = None


def split_document(
    text: str,
    settings: SplitterSettings,
    language: str | None = None,
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
) -> list[Piece]:
    r"""Chunks of ``text``: Markdown by sections, code by ``language``, anything else as prose.

    With ``count_tokens`` and ``max_tokens``, no chunk (heading path included, as it is
    embedded with the chunk) is longer than ``max_tokens``. A chunk grows past the chunk size
    only by taking in markup, and then to twice the size at most.

    >>> doc = "# Guide\n\nIntro.\n\n## Install\n\npip install x\n"
    >>> [(p.heading, p.start_line) for p in split_document(doc, SplitterSettings(40, 0), "markdown")]
    [('Guide', 1), ('Guide > Install', 5)]
    """
    length = count_tokens if settings.unit == "tokens" and count_tokens else len
    splitter = _splitter(settings, language, length)
    # Chunks overlap by at most this many characters (unknown when sizes count tokens).
    overlap = _overlap(settings) if length is len else None
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    pieces: list[Piece] = []
    for offset, section, heading in _sections(text, language):
        # Every chunk of a section is checked against the budget left after its heading.
        heading_tokens = count_tokens(heading) if count_tokens and heading else 0
        model_fits = _model_fits(heading_tokens, count_tokens, max_tokens)
        tables = []
        if language in _TABLE_LANGUAGES:
            tables = find_tables(section, lambda line: length(line) <= settings.chunk_size // 4)
        if tables and length(section) <= settings.chunk_size and (model_fits is None or model_fits(section)):
            # A section that fits in a chunk stays one chunk (a slide, a short page), tables and all.
            whole = section.strip()
            pieces.append(_piece(whole, offset + section.find(whole), heading, newlines))
            continue
        done = 0  # the text before each table is cut as before; each table by the table rule
        for table in [*tables, None]:
            part = section[done : table.start if table else len(section)]
            chunks = splitter.split_text(part)
            for chunk, at in zip(chunks, _starts(part, chunks, overlap), strict=True):
                pieces.extend(
                    _clamp(chunk, offset + done + at, heading, heading_tokens, newlines, count_tokens, max_tokens)
                )
            if table:
                cut = split_table(section, table, settings.chunk_size, length, model_fits)
                for chunk, at, last in cut:
                    if section.startswith(chunk, at):
                        pieces.extend(
                            _clamp(chunk, offset + at, heading, heading_tokens, newlines, count_tokens, max_tokens)
                        )
                    else:  # rows after the repeated caption and header
                        first, end = (bisect.bisect_left(newlines, offset + i) + 1 for i in (at, last))
                        pieces.append(Piece(chunk, first, end, heading, offset + at))
                done = table.end

    def fits(piece: Piece) -> bool:
        # Markup is short, so even a full neighbour takes it in; the bound only stops a long
        # run of markup (a wide table's border) from making a chunk more than twice the size.
        if length(piece.text) > 2 * settings.chunk_size:
            return False
        if not (count_tokens and max_tokens):
            return True
        heading_tokens = count_tokens(piece.heading) if piece.heading else 0
        return count_tokens(piece.text) <= max(max_tokens - heading_tokens, 16)

    return _with_columns(_absorb_markup(text, pieces, language, newlines, fits), newlines)


def embedded_text(piece: Piece) -> str:
    r"""What the embedding model reads for a chunk: its heading path, then its text.

    >>> embedded_text(Piece("pip install x", 7, 7, "Guide > Install"))
    'Guide > Install\npip install x'
    """
    return f"{piece.heading}\n{piece.text}" if piece.heading else piece.text


def _overlap(settings: SplitterSettings) -> int:
    return min(settings.chunk_overlap, settings.chunk_size // 2)


def _splitter(settings: SplitterSettings, language: str | None, length: Callable[[str], int]):
    if language == "rst":
        separators, regex = [*_RST_SEPARATORS, *_SENTENCE_TAIL, ""], True
    elif language and language in {lang.value for lang in Language}:
        separators = RecursiveCharacterTextSplitter.get_separators_for_language(Language(language))
        # Before the last resort (single characters), try sentence ends, Chinese ones included.
        separators = [*separators[:-1], *_SENTENCE_TAIL, ""]
        regex = True
    else:
        separators, regex = PROSE_SEPARATORS, False
    return RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_size,
        chunk_overlap=_overlap(settings),
        separators=separators,
        is_separator_regex=regex,
        keep_separator="end" if not regex else "start",
        length_function=length,
    )


def _starts(section: str, chunks: list[str], overlap: int | None) -> list[int]:
    """Where each of the consecutive ``chunks`` (overlapping by at most ``overlap`` characters,
    if known) starts in ``section``.

    LangChain's own ``start_index`` searches from a bound so loose that it finds an earlier copy
    of a repeated line. Each chunk also reaches past the end of the one before, which pins it.
    """
    starts: list[int] = []
    start = end = 0
    for chunk in chunks:
        bounds = [start + 1, end - len(chunk) + 1, end - overlap if overlap is not None else 0]
        found = section.find(chunk, max(bounds)) if starts else section.find(chunk)
        if found < 0:  # nothing but whitespace was new: the chunk repeats the end of the one before
            found = section.find(chunk, start)
        starts.append(found)
        start, end = found, found + len(chunk)
    return starts


def _sections(text: str, language: str | None) -> list[tuple[int, str, str]]:
    """(character offset, text, heading path) of each Markdown section; the whole text otherwise."""
    if language != "markdown":
        return [(0, text, "")]
    sections: list[tuple[int, str, str]] = []
    path: list[tuple[int, str]] = []
    start, heading, offset, fenced = 0, "", 0, False
    for line in text.splitlines(keepends=True):
        if FENCE.match(line):
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


def _model_fits(heading_tokens: int, count_tokens: TokenCounter | None, max_tokens: int | None):
    """Whether a chunk under a heading of ``heading_tokens`` fits in what the model reads (None: no limit)."""
    if not (count_tokens and max_tokens):
        return None
    room = max(max_tokens - heading_tokens, 16)
    return lambda chunk: count_tokens(chunk) <= room


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
    return [_piece(part, at, heading, newlines) for part, at in parts]


def _piece(text: str, start: int, heading: str, newlines: list[int]) -> Piece:
    first = bisect.bisect_left(newlines, start) + 1
    last = bisect.bisect_left(newlines, max(start, start + len(text) - 1)) + 1
    return Piece(text, first, last, heading, start)


def _absorb_markup(
    text: str, pieces: list[Piece], language: str | None, newlines: list[int], fits: Callable[[Piece], bool]
) -> list[Piece]:
    """``pieces`` with each one of only markup merged into a neighbour.

    Headings, titles and opening fences join the chunk after them, closing fences and tags the
    chunk before; the other neighbour is the fallback. A piece neither neighbour has room for
    is dropped: it holds nothing a question could be about.
    """
    markup = language in _MARKUP_LANGUAGES
    fences = [m.start(1) for m in _FENCE_MARK.finditer(text)] if markup else []

    def fenced(at: int) -> bool:
        return bisect.bisect_left(fences, at) % 2 == 1

    def verbatim(piece: Piece) -> bool:
        # Table chunks that repeat a header are not a stretch of ``text``: never merged into.
        return text.startswith(piece.text, piece.start)

    kept: list[Piece] = []
    waiting = collections.deque(pieces)
    while waiting:
        piece = waiting.popleft()
        if not verbatim(piece) or has_content(piece.text, markup, fenced(piece.start)):
            kept.append(piece)
            continue
        after = (
            _span(text, piece, waiting[0], waiting[0].heading, newlines) if waiting and verbatim(waiting[0]) else None
        )
        before = _span(text, kept[-1], piece, kept[-1].heading, newlines) if kept and verbatim(kept[-1]) else None
        forward = not _closes(piece.text, fenced(piece.start + len(piece.text)))
        for merged in (after, before) if forward else (before, after):
            if merged is not None and fits(merged):
                # Checked again: joined markup may turn a neighbour's last line into a title.
                (waiting.popleft if merged is after else kept.pop)()
                waiting.appendleft(merged)
                break
    return kept


def _span(text: str, first: Piece, second: Piece, heading: str, newlines: list[int]) -> Piece:
    """One piece from the start of ``first`` to the end of whichever of the two ends later."""
    end = max(first.start + len(first.text), second.start + len(second.text))
    return _piece(text[first.start : end], first.start, heading, newlines)


def _closes(text: str, fenced_after: bool) -> bool:
    """Whether markup ``text`` ends by closing something: a code fence, a tag or a comment."""
    last = text.rstrip().rsplit("\n", 1)[-1].strip()
    return (bool(FENCE.match(last)) and not fenced_after) or last.startswith("</") or last.endswith("-->")


def _with_columns(pieces: list[Piece], newlines: list[int]) -> list[Piece]:
    """``pieces``, with columns for those that span the same lines as another one."""
    spans = collections.Counter((p.start_line, p.end_line) for p in pieces)
    return [
        dataclasses.replace(p, columns=(_column(p.start, newlines), _column(p.start + len(p.text) - 1, newlines)))
        if spans[p.start_line, p.end_line] > 1
        else p
        for p in pieces
    ]


def _column(offset: int, newlines: list[int]) -> int:
    line = bisect.bisect_left(newlines, offset)
    return offset - (newlines[line - 1] + 1 if line else 0) + 1


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
