r"""The splitter's table rule: a Markdown table stays whole in one chunk with its caption, or is
cut between rows into chunks that each repeat the caption and the header.

Tables come from spreadsheets and CSV files, Word, HTML and e-book files, and PDF pages. Cut like
prose, a table loses its header after the first chunk, and a chunk of rows then says neither
which table nor which columns its values belong to: the commonest complaint about search over
tables. LangChain's splitters have no such rule, so it is ours.

A table here is a header line, a separator line (``| --- | --- |``) and the row lines after
them, each line starting with ``|``: the form our loaders (markdownify included) write. Its
caption is the line before it (one blank line between is allowed) when that line is short
and is neither a heading (headings reach every chunk through the heading path) nor a table
row nor a code fence.

>>> text = "Prices\n\n| fruit | price |\n| --- | --- |\n| apple | 3 |\n| pear | 4 |\n"
>>> [table.caption for table in find_tables(text, lambda line: True)]
['Prices']
>>> for piece, _, _ in split_table(text, find_tables(text, lambda line: True)[0], 40, len):
...     print(piece, end="\n--\n")
Prices
<BLANKLINE>
| fruit | price |
| --- | --- |
| apple | 3 |
--
Prices
| fruit | price |
| --- | --- |
| pear | 4 |
--
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from core.knowledge.chunk_content import FENCE

_ROW = re.compile(r"^[ \t]*\|")
_SEPARATOR = re.compile(r"^[ \t]*\|(?:[ \t]*:?-+:?[ \t]*\|)*[ \t]*:?-+:?[ \t]*\|?[ \t]*$")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}(?:[ \t]|$)")


@dataclasses.dataclass(frozen=True)
class Table:
    """A Markdown table in a text: offsets are character offsets in that text."""

    start: int  # where its caption (or, without one, its header) starts
    end: int  # just past its last row (the row's newline not included)
    caption: str  # the caption line, or ""
    header: str  # the header line and the separator line, each ending in a newline
    rows: tuple[tuple[int, str], ...]  # each row's offset and its line, without the newline


def find_tables(text: str, is_caption: Callable[[str], bool]) -> list[Table]:
    """The Markdown tables of ``text`` outside code fences, in order; ``is_caption`` says whether a
    line is short enough to be repeated as a caption.
    """
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    fenced = _fenced(lines)
    tables: list[Table] = []
    index, taken = 0, 0  # lines before ``taken`` belong to an earlier table
    while index + 1 < len(lines):
        if fenced[index] or fenced[index + 1] or not (_ROW.match(lines[index]) and _SEPARATOR.match(lines[index + 1])):
            index += 1
            continue
        last = index + 2
        while last < len(lines) and not fenced[last] and _ROW.match(lines[last]):
            last += 1
        caption_line = _caption(lines, fenced, index, taken, is_caption)
        start = offsets[caption_line] if caption_line is not None else offsets[index]
        rows = tuple((offsets[i], lines[i].rstrip("\r\n")) for i in range(index + 2, last))
        header = "".join(line.rstrip("\r\n") + "\n" for line in lines[index : index + 2])
        end = offsets[last - 1] + len(lines[last - 1].rstrip("\r\n"))
        caption = lines[caption_line].strip() if caption_line is not None else ""
        if rows:  # a header alone is no table to cut
            tables.append(Table(start, end, caption, header, rows))
        index = taken = last
    return tables


def split_table(
    text: str,
    table: Table,
    chunk_size: int,
    length: Callable[[str], int],
    fits: Callable[[str], bool] | None = None,
) -> list[tuple[str, int, int]]:
    """Chunks of ``table`` in ``text``: (chunk text, its offset in ``text``, its last line's offset).

    The table whole, with its caption, when it fits in ``chunk_size``; otherwise rows in order,
    as many as fit, each chunk after the first repeating the caption and the header. A chunk
    never ends inside a row, so a row longer than the chunk size makes a longer chunk. The header
    is repeated only when caption and header take at most ``chunk_size``; rows then get at
    least half a chunk, so that repeating never more than triples the table's text.

    ``fits`` (the embedding model's limit) is checked last: a chunk it refuses is halved between
    rows, and a row it refuses even alone is returned alone, as it stands in ``text``, for the
    caller to cut like prose (the first chunk, and such a row, are the only chunks that are
    ``text`` verbatim at their offset).
    """
    whole = text[table.start : table.end]
    if length(whole) <= chunk_size and (fits is None or fits(whole)):
        return [(whole, table.start, table.rows[-1][0])]
    preamble = f"{table.caption}\n{table.header}" if table.caption else table.header
    repeat = length(preamble) <= chunk_size
    room = max(chunk_size - length(preamble), chunk_size // 2) if repeat else chunk_size
    groups: list[list[int]] = [[]]
    # ``room`` is what rows may take besides a repeated preamble; an unrepeated one fills the first chunk.
    used = 0 if repeat else length(text[table.start : table.rows[0][0]])
    for i, (_, row) in enumerate(table.rows):
        size = length(row + "\n")
        if groups[-1] and used + size > room:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += size
    pieces: list[tuple[str, int, int]] = []
    for group in groups:
        pieces.extend(_pieces(text, table, group, preamble if repeat else "", fits))
    return pieces


def _pieces(
    text: str, table: Table, group: list[int], preamble: str, fits: Callable[[str], bool] | None
) -> list[tuple[str, int, int]]:
    first_at, _ = table.rows[group[0]]
    last_at, last_row = table.rows[group[-1]]
    rows = text[first_at : last_at + len(last_row)]
    if group[0] == 0:
        piece = (text[table.start : last_at + len(last_row)], table.start, last_at)
    else:
        piece = (preamble + rows, first_at, last_at)
    if fits is None or fits(piece[0]):
        return [piece]
    if len(group) == 1:  # even alone with its header, the row is too long
        if group[0] == 0:  # the header and caption, kept on their own rather than lost
            head = text[table.start : first_at].rstrip("\n")
            return [(head, table.start, table.start + head.rfind("\n") + 1), (rows, first_at, last_at)]
        return [(rows, first_at, last_at)]
    middle = len(group) // 2
    return [
        *_pieces(text, table, group[:middle], preamble, fits),
        *_pieces(text, table, group[middle:], preamble, fits),
    ]


def _fenced(lines: list[str]) -> list[bool]:
    """Whether each line lies inside (or opens or closes) a fenced code block."""
    inside, marks = False, []
    for line in lines:
        fence = bool(FENCE.match(line))
        marks.append(inside or fence)
        inside ^= fence
    return marks


def _caption(lines: list[str], fenced: list[bool], header: int, taken: int, is_caption: Callable[[str], bool]):
    """The index of the caption line of the table whose header is line ``header``, or None."""
    before = header - 1
    if before >= taken and not lines[before].strip():
        before -= 1  # one blank line may part a caption from its table
    if before < taken or fenced[before]:
        return None
    line = lines[before].strip()
    if not line or _ROW.match(line) or _HEADING.match(line) or not is_caption(line):
        return None
    return before
