"""Read a PDF page by page: text in reading order, tables as Markdown tables, headers and footers
repeated on most pages dropped, and pages without a usable text layer read by OCR.

pdfplumber (MIT, on pdfminer.six) gives the words with their positions and finds ruled tables;
pypdfium2 (Apache/BSD) renders the pages that need OCR. Both are imported here, in the document
reader process, only when a PDF is read. Pages are read one at a time and the file is opened
again every PAGES_PER_OPENING pages, so a 500-page PDF costs the memory of that many pages plus
its text.
"""

from __future__ import annotations

import collections
import io
import re
from pathlib import Path

from core.app_files import resolves_inside
from core.knowledge.layout import Box, page_lines, tidy
from core.knowledge.ocr import OCR_DPI, page_boxes
from core.knowledge.reading import Progress, UnreadableText

# A page whose text layer has fewer characters than this and shows an image is a scan (perhaps
# with a stamped page number); pdfminer writes "(cid:N)" for glyphs it cannot map to text, and a
# page of mostly those has a text layer no one can read.
_MIN_TEXT_CHARS = 20
_MAX_UNMAPPED_SHARE = 0.5
_UNMAPPED = re.compile(r"\(cid:\d+\)")
# Headers and footers are looked for in the top and bottom 7.5% of each page (outside a one-inch
# margin, where word processors put them); a line there on at least this share of the pages (of 3
# or more) is dropped, its digits (page numbers) ignored. Lines of a page's body are never dropped.
_EDGE_SHARE = 0.075
_REPEATED_SHARE = 0.5
_DIGITS = re.compile(r"\d+")
# Opening a file again costs reading its cross-reference table and page tree (milliseconds).
PAGES_PER_OPENING = 50


def read_pdf(data: bytes, progress: Progress | None = None, read_scans: bool = True) -> tuple[list[str], str, int]:
    """The text of each page of a PDF, the reason when it yields no text at all, and how many
    pages have no usable text layer (read by OCR, or with ``read_scans`` false, left empty).

    ``progress`` hears (pages done, pages to do) of the OCR, if any page needs it. Raises
    :class:`UnreadableText` for a broken or password-protected file.
    """
    import pdfplumber
    from pdfplumber.utils.exceptions import PdfminerException

    pages: list[list[str]] = []
    edges: list[set[str]] = []  # per page, the lines in its top and bottom margins
    scans: list[int] = []  # pages without a usable text layer
    try:
        # An open file keeps every object pdfminer decoded (each page's drawing, fonts) until it
        # is closed, whatever the pages release: opened again for each run of pages, a long PDF
        # costs the memory of PAGES_PER_OPENING pages.
        batch = PAGES_PER_OPENING
        while batch == PAGES_PER_OPENING:
            first = len(pages) + 1
            with pdfplumber.open(io.BytesIO(data), pages=range(first, first + PAGES_PER_OPENING)) as pdf:
                batch = len(pdf.pages)
                for page in pdf.pages:
                    lines, edge, usable = _page_text(page)
                    pages.append(lines)
                    edges.append(edge)
                    if not usable:
                        scans.append(len(pages) - 1)
                    page.close()  # drops the page's parsed layout
    except MemoryError:
        raise  # the memory budget's to report, not a broken file
    except PdfminerException as exc:
        if "PDFPasswordIncorrect" in repr(exc):
            raise UnreadableText("encrypted PDF; it needs a password") from exc
        raise UnreadableText(f"broken PDF: {exc.args[0] if exc.args else exc}") from exc
    except Exception as exc:
        # pdfminer raises many kinds of errors on malformed files (its own, and KeyError,
        # TypeError... from deep inside a parse): each means the file is unreadable.
        raise UnreadableText(f"broken PDF: {type(exc).__name__}: {exc}") from exc
    reason = ""
    if scans and read_scans:
        try:
            for index, (lines, edge) in zip(scans, _ocr(data, scans, progress), strict=True):
                pages[index], edges[index] = lines, edge
        except UnreadableText as exc:  # no OCR here, or pdfium cannot open what pdfminer could
            reason = f"{len(scans)} page(s) have no text layer, and {exc}"
    pages = _merge_split_tables(_without_headers(pages, edges))
    texts = ["\n".join(lines) for lines in pages]
    if not any(text.strip() for text in texts):
        reason = reason or (
            f"no text layer, and OCR found no text on its {len(pages)} page(s)"
            if scans
            else "no text on any of its pages"
        )
    return texts, reason, len(scans)


def _page_text(page) -> tuple[list[str], set[str], bool]:
    """The page's lines from its text layer, those in its margins, and whether that layer is
    usable (else: OCR).
    """
    text = "".join(char["text"] for char in page.chars)
    unmapped = sum(len(m) for m in _UNMAPPED.findall(text))
    meaningful = len(text) - unmapped - sum(ch.isspace() for ch in text)
    if meaningful < _MIN_TEXT_CHARS and (page.images or meaningful == 0):
        return [], set(), False
    if unmapped > _MAX_UNMAPPED_SHARE * max(1, len(text)):
        return [], set(), False
    # pdfplumber finds tables by their ruling lines: a page without any has none to find (and
    # skipping the search halves the time of a page of plain text).
    found = page.find_tables() if page.edges else []
    tables = [t for t in found if len(t.rows) >= 2 and len(t.columns) >= 2]
    boxes = [Box(t.bbox[0], t.bbox[1], t.bbox[2], t.bbox[3], _markdown(t.extract()), block=True) for t in tables]
    inside = [t.bbox for t in tables]
    for word in page.extract_words():
        middle = ((word["x0"] + word["x1"]) / 2, (word["top"] + word["bottom"]) / 2)
        if not any(x0 <= middle[0] <= x1 and top <= middle[1] <= bottom for x0, top, x1, bottom in inside):
            boxes.append(Box(word["x0"], word["top"], word["x1"], word["bottom"], word["text"]))
    return *_with_margins(boxes, float(page.width), float(page.height)), True


def _with_margins(boxes: list[Box], width: float, height: float) -> tuple[list[str], set[str]]:
    """The lines of a page in reading order (its top margin's first, its bottom margin's last),
    and the set of lines in its margins, where headers and footers are.
    """
    top = [b for b in boxes if (b.top + b.bottom) / 2 < _EDGE_SHARE * height and not b.block]
    bottom = [b for b in boxes if (b.top + b.bottom) / 2 > (1 - _EDGE_SHARE) * height and not b.block]
    body = [b for b in boxes if b not in top and b not in bottom]
    head, foot = page_lines(top, width), page_lines(bottom, width)
    return [*head, "", *page_lines(body, width), "", *foot], {line for line in head + foot if line}


def _markdown(rows: list[list[str | None]]) -> str:
    """A Markdown table of ``rows``, the first being the header; cells on one line, pipes escaped."""

    def cell(value: str | None) -> str:
        return " ".join((value or "").split()).replace("|", "\\|")

    width = max(len(row) for row in rows)
    lines = [[cell(row[i]) if i < len(row) else "" for i in range(width)] for row in rows]
    out = ["| " + " | ".join(lines[0]) + " |", "| " + " | ".join(["---"] * width) + " |"]
    out += ["| " + " | ".join(row) + " |" for row in lines[1:] if any(row)]
    return "\n".join(out)


def _ocr(data: bytes, indexes: list[int], progress: Progress | None) -> list[tuple[list[str], set[str]]]:
    """Lines of the pages ``indexes`` (and those in their margins), rendered one at a time and
    read by OCR.
    """
    import pypdfium2

    from core.knowledge.ocr import engine

    engine()  # fails before any page is rendered when OCR cannot run here
    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        raise UnreadableText(f"pdfium cannot open the file to render them for OCR ({exc})") from exc
    out = []
    try:
        if progress:
            progress(0, len(indexes))
        for done, index in enumerate(indexes, start=1):
            try:
                page = document[index]
                image = page.render(scale=OCR_DPI / 72).to_pil()
                page.close()
            except pypdfium2.PdfiumError:
                out.append(([], set()))  # a page pdfium cannot draw has nothing to read
            else:
                out.append(_with_margins(*page_boxes(image)))
                del image
            if progress:
                progress(done, len(indexes))
    finally:
        document.close()
    return out


def _key(line: str) -> str:
    return _DIGITS.sub("#", " ".join(line.split()))


def _without_headers(pages: list[list[str]], edges: list[set[str]]) -> list[list[str]]:
    """``pages`` without the lines in their margins (``edges``) that most pages repeat there, page
    numbers aside; lines of the page's body are never dropped.
    """
    counts = collections.Counter(key for edge in edges for key in {_key(line) for line in edge})
    repeated = {key for key, n in counts.items() if n >= max(3, _REPEATED_SHARE * len(pages))}
    return [
        tidy([line for line in lines if not (line in edge and _key(line) in repeated)])
        for lines, edge in zip(pages, edges, strict=True)
    ]


def _merge_split_tables(pages: list[list[str]]) -> list[list[str]]:
    """A table that ends one page and starts the next, with as many columns, becomes one table on
    the first page (the second copy of a repeated header row dropped), so it is kept whole.
    """
    out = [list(lines) for lines in pages]
    for index in range(1, len(out)):
        previous = next((p for p in range(index - 1, -1, -1) if out[p]), None)
        if previous is None or not out[index]:
            continue
        last, first = out[previous][-1], out[index][0]
        if not (last.startswith("|") and first.startswith("|")):
            continue
        head, rows = last.split("\n"), first.split("\n")
        if head[0].count(" | ") != rows[0].count(" | "):
            continue
        body = rows[2:] if rows[0] == head[0] else [rows[0], *rows[2:]]
        out[previous][-1] = "\n".join([*head, *body])
        out[index] = tidy(out[index][1:])
    return out


# Pages shown with a chunk: sharp enough to read on a screen, small enough to send at once.
VIEW_DPI = 110


def source_file(root: Path, path: str) -> Path:
    """The file ``path`` (as stored with its chunks) of the source read from ``root``; raises
    :class:`UnreadableText` for a path that leads out of it (a stored path never does, a link may).
    """
    file = root / path
    if not file.exists():
        raise UnreadableText(f"{path} is no longer in its source's folder")
    if not resolves_inside(file, root):
        raise UnreadableText(f"{path} lies outside its source's folder")
    return file.resolve()


def page_image(file: Path, page: int, dpi: int = VIEW_DPI) -> bytes:
    """Page ``page`` (1-based) of the PDF or image ``file`` as a PNG image (an image file's page is
    its frame, scaled down to a screen's size); raises :class:`UnreadableText`.

    The file was read within the reader's budget when it was ingested; showing one page of it
    here takes a fraction of a second.
    """
    if file.suffix.lower() == ".pdf":
        image = _render(file, page, dpi)
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(file) as opened:
                if not 1 <= page <= getattr(opened, "n_frames", 1):
                    raise UnreadableText(f"{file.name} has no page {page}; it may have changed since it was read")
                opened.seek(page - 1)
                image = opened.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise UnreadableText(f"cannot open {file.name}: {exc}") from exc
        image.thumbnail((1600, 1600))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _render(file: Path, page: int, dpi: int):
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(file)
    except (pypdfium2.PdfiumError, OSError) as exc:
        raise UnreadableText(f"cannot open {file.name}: {exc}") from exc
    try:
        if not 1 <= page <= len(document):
            raise UnreadableText(f"{file.name} has no page {page}; it may have changed since it was read")
        return document[page - 1].render(scale=dpi / 72).to_pil()
    finally:
        document.close()
