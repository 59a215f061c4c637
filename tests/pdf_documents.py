"""PDFs and scans made for the tests and the documents benchmark: pages of wrapped paragraphs in
one or two columns, ruled tables, a header and a footer, drawn with reportlab; scans are the
same pages rendered to images (pypdfium2) and wrapped as image-only PDFs (Pillow).

The text is set in reportlab's built-in STSong-Light (Chinese and Latin), which PDFs name
without embedding it; readers take its text from the PDF, and pypdfium2 renders it with a
system CJK font (Debian's fonts-noto-cjk).
"""

from __future__ import annotations

import dataclasses
import io
import re

FONT = "STSong-Light"
PAGE_WIDTH, PAGE_HEIGHT = 595.0, 842.0  # A4 in points
MARGIN = 72.0  # one inch, as word processors set it
GUTTER = 24.0
_TOKENS = re.compile(r"[A-Za-z0-9'’.,;:!?()%/\-]+|\s+|.")


@dataclasses.dataclass
class Table:
    """A ruled table: ``rows[0]`` is the header row; ``caption`` is written right above it."""

    rows: list[list[str]]
    caption: str = ""


@dataclasses.dataclass
class Page:
    """One page: a full-width title, then paragraphs in one column or two, then tables."""

    paragraphs: list[str] = dataclasses.field(default_factory=list)
    right: list[str] | None = None  # a second column: ``paragraphs`` then fill the left one
    title: str = ""
    tables: list[Table] = dataclasses.field(default_factory=list)


def _font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def wrap(text: str, width: float, size: float) -> list[str]:
    """``text`` cut into lines no wider than ``width``: Latin words whole, Chinese at any character."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    _font()
    lines, line = [], ""
    for token in _TOKENS.findall(text):
        if stringWidth(line + token, FONT, size) <= width or not line.strip():
            line += token
        else:
            lines.append(line.rstrip())
            line = token.lstrip()
    if line.strip():
        lines.append(line.rstrip())
    return lines


def text_pdf(pages: list[Page], header: str = "", footer: str = "", size: float = 10.5) -> bytes:
    """A PDF of ``pages``; ``header`` and ``footer`` (``{page}`` is the page number) on every page."""
    from reportlab.pdfgen import canvas

    _font()
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=(PAGE_WIDTH, PAGE_HEIGHT))
    leading = size * 1.5
    for number, page in enumerate(pages, start=1):
        if header:
            pdf.setFont(FONT, 9)
            pdf.drawString(MARGIN, PAGE_HEIGHT - 36, header.format(page=number))
        if footer:
            pdf.setFont(FONT, 9)
            pdf.drawCentredString(PAGE_WIDTH / 2, 30, footer.format(page=number))
        pdf.setFont(FONT, size)
        y = PAGE_HEIGHT - MARGIN - size
        if page.title:
            pdf.setFont(FONT, size + 4)
            pdf.drawString(MARGIN, y, page.title)
            pdf.setFont(FONT, size)
            y -= 2.2 * leading
        full = PAGE_WIDTH - 2 * MARGIN
        if page.right is None:
            y = _column(pdf, page.paragraphs, MARGIN, y, full, size, leading)
        else:
            half = (full - GUTTER) / 2
            bottom_left = _column(pdf, page.paragraphs, MARGIN, y, half, size, leading)
            bottom_right = _column(pdf, page.right, MARGIN + half + GUTTER, y, half, size, leading)
            y = min(bottom_left, bottom_right)
        for table in page.tables:
            y = _table(pdf, table, y - leading, size, leading)
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def _column(pdf, paragraphs: list[str], x: float, y: float, width: float, size: float, leading: float) -> float:
    for paragraph in paragraphs:
        for line in wrap(paragraph, width, size):
            pdf.drawString(x, y, line)
            y -= leading
        y -= leading * 0.8  # a paragraph's gap
    return y


def _table(pdf, table: Table, y: float, size: float, leading: float) -> float:
    """Draw ``table`` from ``y`` down, its caption above it; returns where the next content starts."""
    if table.caption:
        pdf.drawString(MARGIN, y, table.caption)
        y -= leading * 0.6
    width = (PAGE_WIDTH - 2 * MARGIN) / len(table.rows[0])
    height = leading * 1.4
    for r, row in enumerate(table.rows):
        top = y - r * height
        for c, value in enumerate(row):
            pdf.rect(MARGIN + c * width, top - height, width, height, stroke=1, fill=0)
            pdf.drawString(MARGIN + c * width + 4, top - height + (height - size) / 2 + 1, value)
    return y - len(table.rows) * height - leading


def scanned_pdf(pdf: bytes, dpi: int = 200) -> bytes:
    """``pdf`` as a scanner would give it back: each page an image at ``dpi``, with no text layer."""
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        images = [document[i].render(scale=dpi / 72).to_pil().convert("L") for i in range(len(document))]
    finally:
        document.close()
    return images_pdf(images, dpi)


def images_pdf(images: list, dpi: int = 200) -> bytes:
    """A PDF of one image a page, as scanners write them."""
    out = io.BytesIO()
    images[0].save(out, "PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return out.getvalue()


def text_image(lines: list[str], width: int = 1400, size: int = 40, gap: int = 30):
    """A white image with ``lines`` written on it in black (Noto Sans CJK), as a photo of a page."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", size)
    image = Image.new("L", (width, 2 * gap + len(lines) * (size + gap)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((gap, gap + i * (size + gap)), line, font=font, fill=0)
    return image
