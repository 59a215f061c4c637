"""Turn one file (text, code, notebook, HTML, PDF, Word, CSV) into plain text for chunking.

The document libraries (pypdf, python-docx, BeautifulSoup) are imported inside the readers
that need them, so importing ``core`` stays light.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import functools
import io
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_text_splitters import Language

from core.knowledge.reading import CODE_SUFFIXES, DATA_SUFFIXES, DOC_SUFFIXES, TEXT_SUFFIXES, UnreadableText, decode

if TYPE_CHECKING:
    from bs4.element import PageElement, Tag
    from docx.table import Table
    from docx.text.paragraph import Paragraph


@dataclasses.dataclass(frozen=True)
class LoadedDocument:
    """Text of one file; chunk line numbers refer to the lines of ``text``."""

    text: str
    kind: str
    language: str | None
    page_starts: tuple[int, ...] = ()


class UnsupportedFile(ValueError):
    """The file's type is not one :func:`load` reads."""


_DOC_KINDS = {".md": "markdown", ".markdown": "markdown", ".rst": "rst"}
_CODE_LANGUAGES = {
    ".py": Language.PYTHON,
    ".pyi": Language.PYTHON,
    ".js": Language.JS,
    ".jsx": Language.JS,
    ".mjs": Language.JS,
    ".ts": Language.TS,
    ".tsx": Language.TS,
    ".java": Language.JAVA,
    ".kt": Language.KOTLIN,
    ".scala": Language.SCALA,
    ".go": Language.GO,
    ".rs": Language.RUST,
    ".c": Language.C,
    ".h": Language.C,
    ".cc": Language.CPP,
    ".cpp": Language.CPP,
    ".cxx": Language.CPP,
    ".hpp": Language.CPP,
    ".cu": Language.CPP,
    ".cs": Language.CSHARP,
    ".rb": Language.RUBY,
    ".php": Language.PHP,
    ".swift": Language.SWIFT,
    ".lua": Language.LUA,
    ".pl": Language.PERL,
    ".r": Language.R,
    ".proto": Language.PROTO,
    ".ps1": Language.POWERSHELL,
}
# Files the folder scan accepts by name although they have no suffix.
_PLAIN_NAMES = {"README": "text", "LICENSE": "text", "Makefile": "code", "Dockerfile": "code"}


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _plain(data: bytes, kind: str, language: str | None = None) -> LoadedDocument:
    text, _ = decode(data)
    # UTF-8 and GB18030 both decode NUL bytes, so a binary file can pass ``decode``.
    if "\x00" in text:
        raise UnreadableText("contains NUL bytes; not a text file")
    return LoadedDocument(_normalise(text), kind, language)


def _tidy(lines: Iterable[str]) -> str:
    """Lines joined, trailing spaces cut, runs of blank lines made one, no blank edges."""
    kept: list[str] = []
    for line in lines:
        line = line.rstrip()
        if line or (kept and kept[-1]):
            kept.append(line)
    return "\n".join(kept).strip("\n")


# --- notebooks -------------------------------------------------------------------------------


def _notebook(data: bytes) -> LoadedDocument:
    text, _ = decode(data)
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableText(f"invalid notebook JSON: {exc.msg} at line {exc.lineno}") from exc
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise UnreadableText("not a Jupyter notebook in format 4; re-save it with a current Jupyter")
    metadata = notebook.get("metadata")
    language = (
        _field(_field(metadata, "kernelspec"), "language")
        or _field(_field(metadata, "language_info"), "name")
        or "python"
    )
    parts = []
    for cell in notebook["cells"]:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", "")
        source = _normalise("".join(source) if isinstance(source, list) else str(source)).strip("\n")
        if not source.strip():
            continue
        if cell.get("cell_type") == "code":
            # A fence longer than any backtick run inside the code keeps the block closed.
            longest = max((len(run) for run in re.findall(r"`+", source)), default=0)
            fence = "`" * max(3, longest + 1)
            source = f"{fence}{str(language).lower()}\n{source}\n{fence}"
        parts.append(source)
    return LoadedDocument("\n\n".join(parts), "notebook", Language.MARKDOWN.value)


def _field(mapping: object, key: str) -> object:
    # Notebook metadata is free-form JSON: any level may be missing or of another type.
    return mapping.get(key) if isinstance(mapping, dict) else None


# --- HTML --------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)
_DROPPED_TAGS = ["script", "style", "noscript", "template"]
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
# Blocks that stand apart as paragraphs; other block elements only start a new line.
_PARAGRAPHS = {"p", "pre", "table", "blockquote", "figure", "section", "article"}
_BLOCKS = {
    "div",
    "ul",
    "ol",
    "dl",
    "header",
    "footer",
    "main",
    "nav",
    "aside",
    "address",
    "caption",
    "dt",
    "dd",
    "figcaption",
    "form",
    "fieldset",
    "hr",
    "head",
    "title",
    "body",
    "html",
}


def _decode_html(data: bytes) -> str:
    # A byte-order mark outranks the meta tag, as in browsers.
    match = None if data.startswith(_BOMS) else _META_CHARSET.search(data[:4096])
    if match:
        encoding = match.group(1).decode("ascii").lower()
        if encoding in {"gb2312", "gbk"}:
            encoding = "gb18030"  # pages that say GB2312 or GBK often use characters only their superset has
        elif encoding.startswith(("utf-16", "utf-32")):
            encoding = "utf-8"  # a page whose meta tag reads as ASCII is not UTF-16; browsers agree
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            pass  # an unknown or wrong declaration: detect as for any text file
    return decode(data)[0]


class _HtmlLines:
    """Lines of markdown-like text, built while walking an HTML tree."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.inline: list[str] = []
        self.prefix = ""

    def end_line(self) -> None:
        # HTML collapses whitespace in running text; a pending list marker waits for real text.
        line = " ".join("".join(self.inline).split())
        self.inline.clear()
        if line:
            self.lines.append(self.prefix + line)
            self.prefix = ""

    def add(self, *lines: str, paragraph: bool = False) -> None:
        self.end_line()
        if paragraph:
            self.lines.append("")
        self.lines.extend(lines)
        if paragraph:
            self.lines.append("")

    def walk(self, root: Tag) -> None:
        """Add the text under ``root``, in document order."""
        from bs4.element import NavigableString, PreformattedString, Tag

        # A stack rather than recursion: old pages leave hundreds of tags (<font>, <p>) unclosed,
        # which nests the tree deeper than Python's recursion limit.
        todo: list[tuple[PageElement | Callable[[], None], int]] = [(child, 0) for child in reversed(root.contents)]
        while todo:
            item, depth = todo.pop()
            if isinstance(item, Tag):
                todo.extend(reversed(self._open(item, depth)))
            elif isinstance(item, PreformattedString):  # comments, doctypes, processing instructions
                continue
            elif isinstance(item, NavigableString):
                self.inline.append(str(item))
            else:
                item()

    def _open(self, tag: Tag, depth: int) -> list[tuple[PageElement | Callable[[], None], int]]:
        """Render what ``tag`` itself adds; return its children and closing steps, still to walk."""
        name = tag.name
        if name in _HEADINGS:
            self.add("#" * _HEADINGS[name] + " " + _flat(tag), paragraph=True)
        elif name == "br":
            self.end_line()
        elif name == "tr":
            cells = [_flat(cell) for cell in tag.find_all(["td", "th"], recursive=False)]
            if any(cells):
                self.add(" | ".join(cells))
        elif name == "pre":
            # Code keeps its whitespace; the fence lets a markdown splitter treat it as code.
            self.add("```", *tag.get_text().strip("\n").split("\n"), "```", paragraph=True)
        elif name == "li":
            self.end_line()
            self.prefix = "  " * max(depth - 1, 0) + "- "
            return [*((child, depth) for child in tag.contents), (self._end_item, depth)]
        elif name in _PARAGRAPHS or name in _BLOCKS:
            close = functools.partial(self.add, paragraph=name in _PARAGRAPHS)
            close()
            inner = depth + (name in {"ul", "ol"})
            return [*((child, inner) for child in tag.contents), (close, depth)]
        else:
            return [(child, depth) for child in tag.contents]
        return []

    def _end_item(self) -> None:
        self.end_line()
        self.prefix = ""


def _flat(tag: Tag) -> str:
    """An element's text on one line (for headings and table cells)."""
    lines = _HtmlLines()
    lines.walk(tag)
    lines.end_line()
    return " ".join(line for line in lines.lines if line)


def _html(data: bytes) -> LoadedDocument:
    from bs4 import BeautifulSoup, ParserRejectedMarkup

    text = _normalise(_decode_html(data))
    try:
        soup = BeautifulSoup(text, "html.parser")
    except ParserRejectedMarkup as exc:  # rare: html.parser is lenient
        raise UnreadableText(f"broken HTML: {exc}") from exc
    for tag in soup.find_all(_DROPPED_TAGS):
        tag.decompose()
    lines = _HtmlLines()
    lines.walk(soup)
    lines.end_line()
    return LoadedDocument(_tidy(lines.lines), "html", Language.MARKDOWN.value)


# --- PDF ---------------------------------------------------------------------------------------


def _pdf(data: bytes) -> LoadedDocument:
    from pypdf import PasswordType, PdfReader

    # pypdf raises many kinds of errors on malformed files (its own, and KeyError, TypeError...
    # from deep inside a parse), so every failure of the library becomes an unreadable file.
    try:
        reader = PdfReader(io.BytesIO(data))
        # An empty user password opens PDFs that only restrict printing or copying.
        locked = reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED
        pages = [] if locked else [_normalise(page.extract_text() or "").strip() for page in reader.pages]
    except Exception as exc:
        raise UnreadableText(f"broken PDF: {exc}") from exc
    if locked:
        raise UnreadableText("encrypted PDF; it needs a password")
    if not any(pages):
        raise UnreadableText("no text layer; scanned PDFs need OCR")
    starts, line = [], 1
    for page in pages:
        starts.append(line)
        line += page.count("\n") + 2  # the page's own lines, then the blank line between pages
    return LoadedDocument("\n\n".join(pages), "pdf", None, tuple(starts))


# --- Word ---------------------------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"Heading (\d+)")


def _docx(data: bytes) -> LoadedDocument:
    import docx
    from docx.table import Table

    # python-docx fails on non-zip, non-Word or damaged files with a mix of zip, XML, key and
    # value errors, some only when a damaged element is reached; all mean the file is unreadable.
    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines.extend(["", *_docx_rows(block), ""])
            else:
                lines.extend(_docx_paragraph(block))
    except Exception as exc:
        raise UnreadableText(f"not a readable .docx file: {exc}") from exc
    return LoadedDocument(_tidy(lines), "docx", Language.MARKDOWN.value)


def _docx_paragraph(paragraph: Paragraph) -> list[str]:
    text = _normalise(paragraph.text).strip()
    if not text:
        return []
    style = (paragraph.style.name if paragraph.style is not None else None) or ""
    heading = _HEADING_STYLE.match(style)
    if heading or style.startswith("Title"):
        level = min(int(heading.group(1)), 6) if heading else 1
        return ["", "#" * level + " " + " ".join(text.split()), ""]
    num_pr = paragraph._p.pPr.numPr if paragraph._p.pPr is not None else None
    if num_pr is not None or style.startswith("List"):
        level = num_pr.ilvl.val if num_pr is not None and num_pr.ilvl is not None else 0
        return ["  " * level + "- " + text]
    return [text, ""]


def _docx_rows(table: Table) -> list[str]:
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            # A merged cell appears once per grid column it spans; its text counts once.
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return rows


# --- CSV ---------------------------------------------------------------------------------------


def _table(data: bytes, delimiter: str | None) -> LoadedDocument:
    text, _ = decode(data)
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","  # too little or too regular text to sniff: the common case
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise UnreadableText(f"broken CSV: {exc}") from exc
    if not rows:
        return LoadedDocument("", "csv", None)
    headers = [" ".join(name.split()) for name in rows[0]]
    lines = []
    for row in rows[1:]:
        # Each row on one line, every value named by its column; empty values say nothing.
        pairs = [
            f"{headers[i] if i < len(headers) and headers[i] else f'column {i + 1}'}: {' '.join(value.split())}"
            for i, value in enumerate(row)
            if value.strip()
        ]
        if pairs:
            lines.append(" | ".join(pairs))
    return LoadedDocument("\n".join(lines), "csv", None)


_READERS: dict[str, Callable[[bytes], LoadedDocument]] = {
    ".ipynb": _notebook,
    ".html": _html,
    ".htm": _html,
    ".pdf": _pdf,
    ".docx": _docx,
    ".csv": functools.partial(_table, delimiter=None),
    ".tsv": functools.partial(_table, delimiter="\t"),
}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | frozenset(_READERS)


def load(path: Path, data: bytes | None = None) -> LoadedDocument:
    r"""Read ``path`` (or the given bytes, with ``path`` only naming the file) as text.

    Raises :class:`UnsupportedFile` for a type it does not read, :class:`UnreadableText` for
    content it cannot read, and ``OSError`` when ``path`` itself cannot be read.

    >>> load(Path("notes.md"), "# 标题\r\n正文".encode("gbk"))
    LoadedDocument(text='# 标题\n正文', kind='markdown', language='markdown', page_starts=())
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES and path.name not in _PLAIN_NAMES:
        raise UnsupportedFile(f"unsupported file type: {suffix or path.name}")
    if data is None:
        data = path.read_bytes()
    if suffix in _READERS:
        return _READERS[suffix](data)
    if suffix in CODE_SUFFIXES:
        language = _CODE_LANGUAGES.get(suffix)
        return _plain(data, "code", language.value if language else None)
    if suffix in DOC_SUFFIXES:
        kind = _DOC_KINDS.get(suffix, "text")
        # The splitter cuts Markdown at its headings and rst at its section markup.
        return _plain(data, kind, kind if kind in {"markdown", "rst"} else None)
    if suffix in DATA_SUFFIXES:
        return _plain(data, "data")
    return _plain(data, _PLAIN_NAMES[path.name])
