"""Turn one file (text, code, notebook, HTML, PDF, Word, CSV) into plain text for chunking.

HTML and Word files become Markdown (markdownify; mammoth turns .docx into HTML first), so
headings, lists and tables keep their shape for the splitter. The document libraries are
imported inside the readers that need them, so importing ``core`` stays light.

Files may come from anyone (uploads, shared folders, git repositories), so every format that
runs a parser is read within a time and memory budget: see "Per-file budget" below.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import functools
import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_text_splitters import Language

from core.knowledge.reader_process import OverBudget, read_in_worker
from core.knowledge.reading import CODE_SUFFIXES, DATA_SUFFIXES, DOC_SUFFIXES, TEXT_SUFFIXES, UnreadableText, decode

if TYPE_CHECKING:
    from bs4 import BeautifulSoup


@dataclasses.dataclass(frozen=True)
class LoadedDocument:
    """Text of one file; chunk line numbers refer to the lines of ``text``."""

    text: str
    kind: str
    language: str | None


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
# Notebooks, HTML, PDF, Word and CSV run a parser (json, BeautifulSoup + markdownify, pypdf,
# mammoth, csv) that a hostile file can keep busy, or make allocate, far beyond its size. They are
# read in a worker process (core/knowledge/reader_process.py): only a process can be stopped from outside:
#   - time: this side waits READ_SECONDS for the answer, then kills the worker;
#   - memory: on Linux the worker caps its own address space (RLIMIT_AS) at its size after start-up
#     plus READ_MEMORY_MB, so a parser that asks for more gets a MemoryError instead of the machine's
#     memory. Elsewhere (macOS does not enforce RLIMIT_AS; Windows has no rlimits) the time limit and
#     the size checks below (DOCX_MAX_XML_MB, CSV_MAX_LINE_CHARS, pypdf's own limits) still hold.
# A worker is a fresh Python (never a fork of this process, which runs threads), started once and
# reused, so a file costs one round trip through a pipe (well under a millisecond for a small file);
# a killed worker is replaced on the next file. A file over budget is skipped as unreadable, with
# the reason ("took longer than 120 s to read", "needed more than 1024 MB to read"), like any other.

# pypdf reads a text page in about 8 ms here (a 500-page PDF in 4 s) and mammoth about 0.35 MB of
# XML a second (a 400-page .docx in 9 s): 120 s lets a long book through on a machine several times
# slower, with other jobs on the cores, and stops a file that would never finish.
READ_SECONDS = 120.0
# Reading a 10 MB file (the default size limit) takes tens to a few hundred MB (mammoth's DOM is
# about 20 bytes per byte of XML); 1 GB is generous for that and small next to a loaded model.
READ_MEMORY_MB = 1024
# At about 20 bytes of memory and 3 µs per byte of XML, more than 50 MB of XML would break both
# budgets anyway; checked before anything is inflated, so a zip bomb in a .docx costs nothing.
DOCX_MAX_XML_MB = 50
# No table has a 1 MB line; a CSV that does is a dump, and would cost csv some 30 times its size.
CSV_MAX_LINE_CHARS = 1_000_000
# Each value is written with its column's name, so the text is larger than the table: a few times
# for most tables, under 10 for wide numeric ones. A 100 kB column name over a column of one-letter
# values would multiply it by 50,000: past this factor the table is refused.
CSV_MAX_EXPANSION = 20
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

_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)


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


def _html(data: bytes) -> LoadedDocument:
    from bs4 import BeautifulSoup, ParserRejectedMarkup

    text = _normalise(_decode_html(data))
    try:
        soup = BeautifulSoup(text, "html.parser")
    except ParserRejectedMarkup as exc:  # rare: html.parser is lenient
        raise UnreadableText(f"broken HTML: {exc}") from exc
    for tag in soup.find_all(["script", "style", "noscript", "template"]):
        tag.decompose()
    return LoadedDocument(_markdown(soup), "html", Language.MARKDOWN.value)


# <br> leaves two trailing spaces, and empty blocks leave runs of blank lines.
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{3,}")
# markdownify recurses once per nesting level, and old pages leave tags (<font>, <p>) unclosed
# hundreds of levels deep, past Python's recursion limit.
_MAX_DEPTH = 100


def _markdown(soup: BeautifulSoup) -> str:
    """Markdown for an HTML tree: headings, lists, Markdown tables and fenced code.

    Links and images keep only their text: URLs (and data: images) are noise to search.
    Nothing is escaped, so that names like ``top_k`` stay findable as written.
    """
    from markdownify import MarkdownConverter

    _flatten_deep(soup)
    converter = MarkdownConverter(
        heading_style="atx",
        bullets="-",
        escape_asterisks=False,
        escape_underscores=False,
        strip=["a", "img"],
        table_infer_header=True,
        wrap=True,  # with no width: running text on one line, as a browser shows it
        wrap_width=None,
    )
    text = _TRAILING_SPACE.sub("\n", converter.convert_soup(soup))
    return _BLANK_RUN.sub("\n\n", text).strip()


def _flatten_deep(soup: BeautifulSoup) -> None:
    """Replace what lies deeper than :data:`_MAX_DEPTH` with its text: the words stay, their markup goes."""
    depth = {id(soup): 0}
    at_limit = []
    for tag in soup.find_all(True):  # document order, parents first, without recursion
        depth[id(tag)] = depth[id(tag.parent)] + 1
        if depth[id(tag)] == _MAX_DEPTH:
            at_limit.append(tag)
    for tag in at_limit:  # never inside one another, so each is flattened once
        tag.string = tag.get_text(" ")


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
    except MemoryError:
        raise  # the memory budget's to report, not a broken file
    except Exception as exc:
        raise UnreadableText(f"broken PDF: {exc}") from exc
    if locked:
        raise UnreadableText("encrypted PDF; it needs a password")
    if not any(pages):
        raise UnreadableText("no text layer; scanned PDFs need OCR")
    return LoadedDocument("\n\n".join(pages), "pdf", None)


# --- Word ---------------------------------------------------------------------------------------

# The default style map makes Heading 1-6 headings but leaves a Title a paragraph.
_DOCX_STYLES = "p[style-name='Title'] => h1:fresh"


def _docx(data: bytes) -> LoadedDocument:
    import mammoth
    from bs4 import BeautifulSoup

    _check_docx_size(data)
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
    return LoadedDocument(_markdown(BeautifulSoup(html, "html.parser")), "docx", Language.MARKDOWN.value)


def _check_docx_size(data: bytes) -> None:
    """Refuse a .docx whose XML would unpack past DOCX_MAX_XML_MB, before mammoth inflates any of it.

    The sizes come from the zip's directory; zipfile never returns more than an entry declares,
    so a lie there only makes the file shorter. Media (images) are not read, so they do not count.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            unpacked = sum(info.file_size for info in zf.infolist() if not info.filename.startswith("word/media/"))
    except (zipfile.BadZipFile, ValueError, OSError):
        return  # not a zip: mammoth says so in its own words below
    if unpacked > DOCX_MAX_XML_MB * 1_000_000:
        raise OverBudget(
            f"its XML would unpack to {unpacked / 1e6:,.0f} MB, more than the {DOCX_MAX_XML_MB} MB a .docx may hold"
        )


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
    headers: list[str] | None = None
    lines = []
    room = CSV_MAX_EXPANSION * len(text) + 10_000
    try:
        for row in rows:  # one row at a time: the rows never are all in memory at once
            if headers is None:
                headers = [" ".join(name.split()) for name in row]
                continue
            # Each row on one line, every value named by its column; empty values say nothing.
            pairs = [
                f"{headers[i] if i < len(headers) and headers[i] else f'column {i + 1}'}: {' '.join(value.split())}"
                for i, value in enumerate(row)
                if value.strip()
            ]
            if pairs:
                lines.append(" | ".join(pairs))
                room -= len(lines[-1])
                if room < 0:
                    raise UnreadableText(f"named by its columns, it would grow over {CSV_MAX_EXPANSION} times its size")
    except csv.Error as exc:
        raise UnreadableText(f"broken CSV: {exc}") from exc
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


def parse(suffix: str, data: bytes) -> dict:
    """What the reader process runs for one file: the parser of ``suffix``, as a plain dict."""
    return dataclasses.asdict(_READERS[suffix](data))


def load(path: Path, data: bytes | None = None) -> LoadedDocument:
    r"""Read ``path`` (or the given bytes, with ``path`` only naming the file) as text.

    Raises :class:`UnsupportedFile` for a type it does not read, :class:`UnreadableText` for
    content it cannot read (:class:`OverBudget` for one over the per-file budget, :class:`ReaderFailed`
    when a parser fails unexpectedly), and ``OSError`` when ``path`` itself cannot be read.

    >>> load(Path("notes.md"), "# 标题\r\n正文".encode("gbk"))
    LoadedDocument(text='# 标题\n正文', kind='markdown', language='markdown')
    """
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES and path.name not in _PLAIN_NAMES:
        raise UnsupportedFile(f"unsupported file type: {suffix or path.name}")
    if data is None:
        data = path.read_bytes()
    if suffix in _READERS:
        return LoadedDocument(**read_in_worker(suffix, data, READ_MEMORY_MB, READ_SECONDS))
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
