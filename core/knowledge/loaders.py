"""Turn one file (text, code, notebook, HTML, PDF, Word, spreadsheet, CSV, slides, e-book) into
plain text for chunking.

HTML, Word and EPUB files become Markdown (markdownify; mammoth turns .docx into HTML first), so
headings, lists and tables keep their shape for the splitter. Spreadsheets and CSV files become
Markdown tables, a section per sheet (spreadsheets.py); slides a section per slide (slides.py).
The document libraries are imported inside the readers that need them, so importing ``core``
stays light.

Files may come from anyone (uploads, shared folders, git repositories), so every format that
runs a parser is read within a time and memory budget: see "Per-file budget" below.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

from langchain_text_splitters import Language

from core.knowledge import ebooks, slides, spreadsheets
from core.knowledge.html_markdown import decode_html, html_markdown
from core.knowledge.ocr import IMAGE_SUFFIXES
from core.knowledge.reader_process import read_in_worker
from core.knowledge.reading import (
    CODE_SUFFIXES,
    DATA_SUFFIXES,
    DOC_SUFFIXES,
    TEXT_SUFFIXES,
    Progress,
    UnreadableText,
    decode,
)
from core.knowledge.zip_budget import check_unpacked


@dataclasses.dataclass(frozen=True)
class LoadedDocument:
    """Text of one file; chunk line numbers refer to the lines of ``text``.

    ``pages`` (PDFs, images) holds the 1-based line of ``text`` where each page starts;
    ``ocr_pages`` counts the pages without a text layer, read by OCR (or, in a preview, to read).
    """

    text: str
    kind: str
    language: str | None
    pages: tuple[int, ...] = ()
    ocr_pages: int = 0


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

# --- Per-file budget -----------------------------------------------------------------------------
#
# Plain text (Markdown, text, reStructuredText, code, config files) is only decoded: time and
# memory grow linearly with its size, which the folder scan caps (Settings.max_file_mb), so it is
# read here, at full speed, with no other guard.
#
# Notebooks, HTML, PDF, Word and CSV run a parser (json, BeautifulSoup + markdownify, pdfplumber,
# mammoth, csv) that a hostile file can keep busy, or make allocate, far beyond its size. They are
# read in a worker process (core/knowledge/reader_process.py): only a process can be stopped from outside:
#   - time: this side waits READ_SECONDS for the answer, then kills the worker;
#   - memory: on Linux the worker caps its own address space (RLIMIT_AS) at its size after start-up
#     plus READ_MEMORY_MB, so a parser that asks for more gets a MemoryError instead of the machine's
#     memory. Elsewhere (macOS does not enforce RLIMIT_AS; Windows has no rlimits) the time limit and
#     the size checks (zip_budget.py for Office files and e-books, CSV_MAX_LINE_CHARS, pdfminer's own
#     limits) still hold.
# A worker is a fresh Python (never a fork of this process, which runs threads), started once and
# reused, so a file costs one round trip through a pipe (well under a millisecond for a small file);
# a killed worker is replaced on the next file. A file over budget is skipped as unreadable, with
# the reason ("took longer than 120 s to read", "needed more than 1024 MB to read"), like any other.

# pdfplumber reads a text page in 20 to 160 ms here (layout and table finding; 500 pages with some
# tables in 41 s, a page dense with a table 157 ms, so 500 such pages in ~80 s) and mammoth about
# 0.35 MB of XML a second (a 400-page .docx in 9 s): 120 s lets a long book through on this 2-core
# machine with other jobs on the cores and stops a file that would never finish, but a 500-page
# book of dense tables on a machine half as fast would be skipped ("took longer than 120 s").
READ_SECONDS = 120.0
# Reading a 10 MB file (the default size limit) takes tens to a few hundred MB (mammoth's DOM is
# about 20 bytes per byte of XML); 1 GB is generous for that and small next to a loaded model.
READ_MEMORY_MB = 1024
# OCR of a full A4 page of text at 200 dpi takes 25 to 45 s on a 2-core CPU shared with other
# jobs (bench/documents.py), a short page a few seconds: 300 s lets a dense page through on a
# machine several times slower. RapidOCR's models and onnxruntime's buffers for a page need about
# 1 GB of address space besides what the file itself costs.
OCR_PAGE_SECONDS = 300.0
OCR_MEMORY_MB = 1024
# No table has a 1 MB line; a CSV that does is a dump, and would cost csv some 30 times its size.
CSV_MAX_LINE_CHARS = 1_000_000
# Tried only at line starts (\r, \n or \r\n end a CSV line): [^\r\n]{N} alone would start again at
# every character of a line just under N long, which takes quadratic time.
_LONG_LINE = re.compile(rf"(?:\A|(?<=[\r\n]))[^\r\n]{{{CSV_MAX_LINE_CHARS + 1}}}")


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _plain(data: bytes, kind: str, language: str | None = None) -> LoadedDocument:
    text, _ = decode(data)
    # UTF-8 and GB18030 both decode NUL bytes, so a binary file can pass ``decode``.
    if "\x00" in text:
        raise UnreadableText("contains NUL bytes; not a text file")
    return LoadedDocument(_normalise(text), kind, language)


# --- notebooks -------------------------------------------------------------------------------


def _notebook(data: bytes) -> LoadedDocument:
    text, _ = decode(data)
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableText(f"invalid notebook JSON: {exc.msg} at line {exc.lineno}") from exc
    except RecursionError as exc:  # [[[[... thousands deep
        raise UnreadableText("invalid notebook JSON: nested too deeply") from exc
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
        # Format 4 says a string or a list of strings; anything else in the list is not text.
        source = "".join(part for part in source if isinstance(part, str)) if isinstance(source, list) else str(source)
        source = _normalise(source).strip("\n")
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


def _html(data: bytes) -> LoadedDocument:
    from bs4 import BeautifulSoup, ParserRejectedMarkup

    text = _normalise(decode_html(data))
    try:
        soup = BeautifulSoup(text, "html.parser")
    except ParserRejectedMarkup as exc:  # rare: html.parser is lenient
        raise UnreadableText(f"broken HTML: {exc}") from exc
    for tag in soup.find_all(["script", "style", "noscript", "template"]):
        tag.decompose()
    return LoadedDocument(html_markdown(soup), "html", Language.MARKDOWN.value)


# --- PDF and images ------------------------------------------------------------------------------


def _pdf(data: bytes, progress: Progress | None = None, read_scans: bool = True) -> LoadedDocument:
    from core.knowledge.pdf import read_pdf

    return _paged(*read_pdf(data, progress, read_scans), "pdf", read_scans)


def _image(data: bytes, progress: Progress | None = None, read_scans: bool = True) -> LoadedDocument:
    from core.knowledge.ocr import read_image

    pages, reason, count = read_image(data, progress, read_scans)
    return _paged(["\n".join(lines) for lines in pages], reason, count, "image", read_scans)


def _paged(pages: list[str], reason: str, ocr_pages: int, kind: str, read_scans: bool) -> LoadedDocument:
    """One document of ``pages`` parted by blank lines, knowing the line each page starts on.

    Unless ``read_scans``, a document whose pages all wait for OCR comes back empty, to be counted.
    """
    if not any(page.strip() for page in pages):
        if ocr_pages and not read_scans:
            return LoadedDocument("", kind, None, (), ocr_pages)
        raise UnreadableText(reason or "no text")
    parts: list[str] = []
    starts: list[int] = []
    line = 1
    for page in pages:
        starts.append(line)  # an empty page starts where the next one does
        if page.strip():
            parts.append(page)
            line += page.count("\n") + 2  # its lines and the blank line after it
    # Prose, cut at sentence ends; the splitter's table rule finds the Markdown tables in it.
    return LoadedDocument("\n\n".join(parts), kind, None, tuple(starts), ocr_pages)


# --- Word ---------------------------------------------------------------------------------------

# The default style map makes Heading 1-6 headings but leaves a Title a paragraph.
_DOCX_STYLES = "p[style-name='Title'] => h1:fresh"


def _docx(data: bytes) -> LoadedDocument:
    import mammoth
    from bs4 import BeautifulSoup

    check_unpacked(data, ".docx", skip=("word/media/",))  # images are not read: they do not count
    # Images are dropped from the text anyway: skip reading and encoding them.
    no_images = mammoth.images.img_element(lambda image: {})
    # mammoth fails on non-zip, non-Word or damaged files with a mix of zip, XML, key and
    # value errors; all mean the file is unreadable.
    try:
        html = mammoth.convert_to_html(io.BytesIO(data), style_map=_DOCX_STYLES, convert_image=no_images).value
    except MemoryError:
        raise
    except Exception as exc:
        raise UnreadableText(f"not a readable .docx file: {exc}") from exc
    return LoadedDocument(html_markdown(BeautifulSoup(html, "html.parser")), "docx", Language.MARKDOWN.value)


# --- CSV ---------------------------------------------------------------------------------------


def _table(data: bytes, delimiter: str | None) -> LoadedDocument:
    text, _ = decode(data)
    # csv keeps a whole row in memory as a list of strings (about 60 bytes a field), so one long
    # line of "a,a,a,..." would need some 30 times its size: refuse lines no table has.
    if len(text) > CSV_MAX_LINE_CHARS and _LONG_LINE.search(text):
        raise UnreadableText(f"has a line longer than {CSV_MAX_LINE_CHARS:,} characters; not a table")
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","  # too little or too regular text to sniff: the common case

    rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        table = spreadsheets.sheet_markdown("", rows, spreadsheets.Room(len(text)))
    except csv.Error as exc:
        raise UnreadableText(f"broken CSV: {exc}") from exc
    return LoadedDocument(table, "csv", Language.MARKDOWN.value)


# --- spreadsheets, slides, e-books -----------------------------------------------------------------


def _converted(data: bytes, convert: Callable[[bytes], str], kind: str) -> LoadedDocument:
    return LoadedDocument(convert(data), kind, Language.MARKDOWN.value)


def _epub(data: bytes) -> LoadedDocument:
    from bs4 import BeautifulSoup, ParserRejectedMarkup

    parts = []
    for title, html in ebooks.chapters(data):
        try:
            soup = BeautifulSoup(_normalise(decode_html(html)), "html.parser")
        except ParserRejectedMarkup as exc:
            raise UnreadableText(f"broken chapter in the .epub file: {exc}") from exc
        for tag in soup.find_all(["head", "script", "style"]):
            tag.decompose()
        text = html_markdown(soup)
        # Each chapter a section: under its own first heading, or under its name in the contents.
        if title and text and not text.startswith("#"):
            text = f"# {title}\n\n{text}"
        parts.append(text)
    text = "\n\n".join(part for part in parts if part.strip())
    if not text:
        raise UnreadableText("no chapter has any text")
    return LoadedDocument(text, "epub", Language.MARKDOWN.value)


_READERS: dict[str, Callable[[bytes], LoadedDocument]] = {
    ".ipynb": _notebook,
    ".html": _html,
    ".htm": _html,
    ".pdf": _pdf,
    **dict.fromkeys(sorted(IMAGE_SUFFIXES), _image),
    ".docx": _docx,
    ".csv": functools.partial(_table, delimiter=None),
    ".tsv": functools.partial(_table, delimiter="\t"),
    ".xlsx": functools.partial(_converted, convert=spreadsheets.xlsx, kind="xlsx"),
    ".xlsm": functools.partial(_converted, convert=spreadsheets.xlsx, kind="xlsx"),
    ".xls": functools.partial(_converted, convert=spreadsheets.xls, kind="xls"),
    ".pptx": functools.partial(_converted, convert=slides.pptx, kind="pptx"),
    ".epub": _epub,
}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | frozenset(_READERS)


# Readers that report progress (pages read by OCR, pages to read).
_PAGED_READERS = frozenset({".pdf", *IMAGE_SUFFIXES})


def read_in_process(path: Path) -> bool:
    """Whether :func:`load` reads ``path`` in the calling process (text, Markdown, code, HTML),
    not in a reader worker (PDFs, images, Office files, e-books).
    """
    return path.suffix.lower() not in _READERS


def parse(suffix: str, data: bytes, progress: Progress | None = None, read_scans: bool = True) -> dict:
    """What the reader process runs for one file: the parser of ``suffix``, as a plain dict."""
    paged = suffix in _PAGED_READERS
    return dataclasses.asdict(_READERS[suffix](data, progress, read_scans) if paged else _READERS[suffix](data))


def load(
    path: Path, data: bytes | None = None, progress: Progress | None = None, read_scans: bool = True
) -> LoadedDocument:
    r"""Read ``path`` (or the given bytes, with ``path`` only naming the file) as text.

    ``progress`` hears (pages done, pages to do) while pages are read by OCR, and about once a
    second while a PDF or an image is read; an exception it raises (a cancel) stops the reading.
    With ``read_scans`` false (a preview), pages without a text layer are counted, not read.

    Raises :class:`UnsupportedFile` for a type it does not read, :class:`UnreadableText` for
    content it cannot read (:class:`OverBudget` for one over the per-file budget, :class:`ReaderFailed`
    when a parser fails unexpectedly), and ``OSError`` when ``path`` itself cannot be read.

    >>> load(Path("notes.md"), "# 标题\r\n正文".encode("gbk"))
    LoadedDocument(text='# 标题\n正文', kind='markdown', language='markdown', pages=(), ocr_pages=0)
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES and path.name not in _PLAIN_NAMES:
        raise UnsupportedFile(f"unsupported file type: {suffix or path.name}")
    if data is None:
        data = path.read_bytes()
    if suffix in _READERS:
        # PDFs and images go to a worker that has the OCR models loaded; OCR takes seconds a page,
        # so past the text layer each page gets its own time budget.
        paged = suffix in _PAGED_READERS
        found = read_in_worker(
            suffix,
            data,
            READ_MEMORY_MB + (OCR_MEMORY_MB if paged else 0),
            READ_SECONDS,
            ocr=paged,
            page_seconds=OCR_PAGE_SECONDS,
            progress=progress,
            read_scans=read_scans,
        )
        return LoadedDocument(**{**found, "pages": tuple(found.get("pages", ()))})
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
