r"""Spreadsheets and CSV files as Markdown tables: each sheet a section headed by its name.

One form for every table (these, and the tables of Word, HTML and PDF files): a Markdown table
whose header row the splitter repeats in every chunk of rows (core/knowledge/table_split.py),
so a chunk of rows 400-450 still says which sheet (its heading path) and which columns. The
older "column: value | column: value" lines named every value, once per row instead of once
per chunk: on generated staff tables (300 and 1,000 rows, English and Chinese, questions that
name a row, the app's hybrid search) both forms found the row in the top 5 equally often
(0.97-1.0) and first about equally often, and the Markdown form needed half the chunks.

Leading rows of a single cell above the table (a report's title, a unit) stay above it as
lines of their own, the last one next to the table as its caption; empty rows and trailing
empty cells are dropped, and an empty header cell is named after its column.

>>> print(markdown_table([["name", "", "city"], ["Li", "x"], ["Zhang", "", "北京"]]))
| name | column 2 | city |
| --- | --- | --- |
| Li | x |
| Zhang |  | 北京 |
"""

from __future__ import annotations

import contextlib
import datetime
import io
from collections.abc import Iterable, Iterator, Sequence

from core.knowledge.reading import UnreadableText
from core.knowledge.zip_budget import check_unpacked

# A table's Markdown is about as large as its cells' text. Empty cells in the middle of a row
# still cost " |" each, so a sheet whose rows each hold a cell far to the right (one short XML
# element each) would grow a thousandfold: past this factor of the file's size it is refused.
MAX_EXPANSION = 20


class Room:
    """What is left of the text budget of one file."""

    def __init__(self, size: int) -> None:
        self.left = MAX_EXPANSION * size + 10_000

    def take(self, text: str) -> str:
        """``text``, once counted against the budget; raises :class:`UnreadableText` past it."""
        self.left -= len(text) + 1
        if self.left < 0:
            raise UnreadableText(f"as a table, it would grow over {MAX_EXPANSION} times its size")
        return text


def cell_text(value: object) -> str:
    r"""A cell's value as one line of table text: dates in ISO form, numbers as a spreadsheet
    shows them by default, whitespace collapsed, ``|`` escaped.

    >>> [cell_text(v) for v in (None, 3.0, 0.1 + 0.2, datetime.datetime(2024, 5, 1), True, " a\nb | c")]
    ['', '3', '0.3', '2024-05-01', 'TRUE', 'a b \\| c']
    """
    if isinstance(value, str):  # most cells, and every CSV value
        text = value
    elif value is None:
        return ""
    elif isinstance(value, bool):
        text = "TRUE" if value else "FALSE"
    elif isinstance(value, float):
        text = format(value, ".15g")  # what the cell shows, without binary noise (0.30000000000000004)
    elif isinstance(value, datetime.datetime):
        text = value.date().isoformat() if value.time() == datetime.time() else value.isoformat(" ", "seconds")
    elif isinstance(value, datetime.date | datetime.time):
        text = value.isoformat()
    else:
        text = str(value)
    return " ".join(text.split()).replace("|", r"\|")


def markdown_table(rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table of ``rows`` (cell texts; the first row is the header), one line a row."""
    width = max(len(row) for row in rows)
    return "\n".join([*_header(rows[0], width), *(_line(row) for row in rows[1:])])


def sheet_markdown(name: str, rows: Iterable[Sequence[object]], room: Room) -> str:
    """A sheet as a section: its name as a heading (none when ``name`` is empty), the lines above
    its table, and the table; "" for an empty sheet.

    The rows are read once, one at a time; only their Markdown lines are kept.
    """
    above: list[list[str]] = []  # rows of one cell before the first row of several: a title, a unit
    header: list[str] | None = None
    lines: list[str] = []
    width = 0
    for cells in _cells(rows):
        width = max(width, len(cells))
        if header is not None:
            lines.append(room.take(_line(cells)))
        elif sum(bool(cell) for cell in cells) > 1:
            header = cells
        else:
            above.append(cells)
    if header is None:  # a table of one column, or nothing
        if not above:
            return ""
        header, lines, above = above[0], [room.take(_line(cells)) for cells in above[1:]], []
    parts = [f"# {' '.join(name.split())}"] if name.strip() else []
    parts.extend(room.take(next(cell for cell in cells if cell)) for cells in above)
    parts.append("\n".join([*_header(header, width), *lines]))
    return "\n\n".join(parts)


@contextlib.contextmanager
def _unreadable_as(kind: str) -> Iterator[None]:
    """Any failure of the library inside becomes "not a readable ``kind`` file": spreadsheet
    libraries fail on damaged files with zip, XML, struct, key and value errors alike. Running
    out of memory stays the memory budget's to report, and our own refusals pass as they are.
    """
    try:
        yield
    except (MemoryError, UnreadableText):
        raise
    except Exception as exc:
        raise UnreadableText(f"not a readable {kind} file: {exc}") from exc


def xlsx(data: bytes) -> str:
    """Every worksheet of an .xlsx (or .xlsm) file, in workbook order; formulas as their last
    computed values (a formula never computed, as in files some libraries write, is empty).
    """
    from openpyxl import load_workbook

    check_unpacked(data, ".xlsx", skip=("xl/media/",))
    room = Room(len(data))
    with _unreadable_as(".xlsx"):
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        with _unreadable_as(".xlsx"):
            sheets = [sheet_markdown(sheet.title, sheet.iter_rows(values_only=True), room) for sheet in book.worksheets]
    finally:
        book.close()
    return _sheets(sheets)


def xls(data: bytes) -> str:
    """Every worksheet of an Excel 97-2003 (.xls) file, in workbook order."""
    import xlrd

    room = Room(len(data))
    with _unreadable_as(".xls"):
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
    try:
        with _unreadable_as(".xls"):
            sheets = []
            for index in range(book.nsheets):
                sheet = book.sheet_by_index(index)
                sheets.append(sheet_markdown(sheet.name, _xls_rows(sheet, book.datemode), room))
                book.unload_sheet(index)
    finally:
        book.release_resources()
    return _sheets(sheets)


def _xls_rows(sheet, datemode: int) -> Iterator[list[object]]:
    for r in range(sheet.nrows):
        yield [_xls_value(cell, datemode) for cell in sheet.row(r)]


def _xls_value(cell, datemode: int) -> object:
    import xlrd

    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            return xlrd.xldate_as_datetime(cell.value, datemode)
        except (xlrd.xldate.XLDateError, OverflowError, ValueError):
            return cell.value
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return bool(cell.value)
    if cell.ctype == xlrd.XL_CELL_ERROR:
        return xlrd.error_text_from_code.get(cell.value, "")
    return cell.value


def _sheets(sheets: list[str]) -> str:
    text = "\n\n".join(sheet for sheet in sheets if sheet)
    if not text:
        raise UnreadableText("every sheet is empty")
    return text


def _cells(rows: Iterable[Sequence[object]]) -> Iterator[list[str]]:
    """The rows that are not empty, as cell texts without the empty cells at their end."""
    for values in rows:
        cells = [cell_text(value) if value is not None else "" for value in values]
        while cells and not cells[-1]:
            cells.pop()
        if cells:
            yield cells


def _header(cells: Sequence[str], width: int) -> list[str]:
    named = [cells[i] if i < len(cells) and cells[i] else f"column {i + 1}" for i in range(width)]
    return [_line(named), _line(["---"] * width)]


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
