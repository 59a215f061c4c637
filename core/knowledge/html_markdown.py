"""HTML (pages, and Word and EPUB files once converted to HTML) to Markdown for chunking."""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING

from core.knowledge.reading import decode

if TYPE_CHECKING:
    from bs4 import BeautifulSoup

_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)


def decode_html(data: bytes) -> str:
    """An HTML file's text, in the encoding its byte-order mark or meta tag declares, else detected."""
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


# <br> leaves two trailing spaces, and empty blocks leave runs of blank lines.
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{3,}")
# markdownify recurses once per nesting level, and old pages leave tags (<font>, <p>) unclosed
# hundreds of levels deep, past Python's recursion limit.
_MAX_DEPTH = 100


def html_markdown(soup: BeautifulSoup) -> str:
    """Markdown for an HTML tree: headings, lists, Markdown tables and fenced code.

    Links and images keep only their text: URLs (and data: images) are noise to search.
    Nothing is escaped, so that names like ``top_k`` stay findable as written.
    """
    from bs4 import Declaration, ProcessingInstruction
    from markdownify import MarkdownConverter

    # XHTML's <?xml ...?> and other declarations would come out as text.
    for node in soup.find_all(string=lambda node: isinstance(node, (Declaration, ProcessingInstruction))):
        node.extract()
    _flatten_deep(soup)
    _one_line_cells(soup)
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


def _one_line_cells(soup: BeautifulSoup) -> None:
    r"""Keep each table cell to its own column: markdownify writes a "|" in a cell, and a table
    nested in one, as they are, which parts the row into wrong columns. Nested tables become
    their text and "|" becomes "\|", as Markdown escapes it.
    """
    for table in reversed(soup.find_all("table")):  # innermost first
        if table.find_parent(["td", "th"]) is not None:
            table.replace_with(" ".join(table.stripped_strings))
    for cell in soup.find_all(["td", "th"]):
        for string in cell.find_all(string=lambda text: "|" in text):
            string.replace_with(string.replace("|", "\\|"))


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
