"""Text of scanned pages and images, by OCR with the Chinese/English PP-OCRv4 models that the
``rapidocr-onnxruntime`` wheel carries (so it works offline), lines put in reading order by
:mod:`core.knowledge.layout`.

The OCR runs in the document reader process (core/knowledge/reader_process.py), which imports
RapidOCR (with OpenCV and onnxruntime) before its memory budget is set and loads the models on
the first page that needs them; elsewhere nothing here imports them.
"""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from core.knowledge.layout import Box, page_lines
from core.knowledge.reading import Progress, UnreadableText

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"})
# Pages are rendered for OCR at the resolution scanners use for text; RapidOCR scales every image
# down to at most 2000 pixels a side anyway (its max_side_len), which 200 dpi on A4 just exceeds.
OCR_DPI = 200
MAX_SIDE = 2000
# Decoding costs 3 bytes a pixel: 100 megapixels (a 10,000 x 10,000 scan) is 300 MB, within the
# reader's memory budget; larger images are refused before they are decoded.
MAX_PIXELS = 100_000_000
# Icons and bullets in a documentation folder hold no text worth a search; smaller images are skipped.
MIN_SIDE = 48
# RapidOCR's own default: recognitions it is less sure of are mostly noise (specks, rules).
MIN_SCORE = 0.5
# Pages read per second on a 2-core CPU shared with other jobs: bench/documents.py measured 0.032
# (5 full A4 pages of Chinese and English text at 200 dpi in 158 s); the preview's time estimate.
PAGES_PER_SECOND = 0.03

# The bytes that may follow a JPEG's start-of-image mark: an APPn, a table or a frame marker.
_JPEG_MARKERS = frozenset({*range(0xC0, 0xD0), *range(0xDB, 0xF0), 0xFE})

_lock = threading.Lock()


class OcrUnavailable(UnreadableText):
    """The OCR models cannot run here (the package is missing or broken)."""


def looks_like_image(head: bytes) -> bool:
    r"""Whether a file's first 12 bytes are those of a PNG, JPEG, WebP or TIFF image.

    >>> looks_like_image(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d"), looks_like_image(b"\x89PNG\x00\x00")
    (True, False)
    """
    return (
        head.startswith(b"\x89PNG\r\n\x1a\n")
        or (head.startswith(b"\xff\xd8\xff") and len(head) > 3 and head[3] in _JPEG_MARKERS)
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or head[:4] in (b"II*\x00", b"MM\x00*")
    )


@functools.cache
def engine():
    """The RapidOCR engine, loaded once per process; raises :class:`OcrUnavailable`."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:
        raise OcrUnavailable(
            f"the OCR package cannot be imported ({exc}); install rapidocr-onnxruntime to read them"
        ) from exc
    return RapidOCR()


def image_boxes(image: Image.Image) -> list[Box]:
    """The lines RapidOCR finds on ``image``, as boxes in the image's pixels."""
    with _lock:  # one recognition at a time: onnxruntime already uses every core for one
        found, _ = engine()(image.convert("RGB"))
    boxes = []
    for corners, text, score in found or []:
        if float(score) < MIN_SCORE or not str(text).strip():
            continue
        xs, ys = [p[0] for p in corners], [p[1] for p in corners]
        boxes.append(Box(min(xs), min(ys), max(xs), max(ys), str(text).strip(), joined=True))
    return boxes


def page_boxes(image: Image.Image) -> tuple[list[Box], float, float]:
    """The lines OCR finds on ``image`` (a page), with the width and height they are placed in."""
    image = _smaller(image)
    if _blank(image):
        return [], image.width, image.height  # nothing to read: saves the detector's seconds
    return image_boxes(image), image.width, image.height


def image_lines(image: Image.Image) -> list[str]:
    """The text of ``image`` (a page) as lines in reading order."""
    boxes, width, _ = page_boxes(image)
    return page_lines(boxes, width)


def read_image(
    data: bytes, progress: Progress | None = None, read_scans: bool = True
) -> tuple[list[list[str]], str, int]:
    """Lines of each page (frame) of an image file, a reason when no text was found, and the
    number of pages (with ``read_scans`` false, only counted: every page is empty).
    """
    pages = []
    frames = list(_frames(data))
    if not read_scans:
        return [[] for _ in frames], "", len(frames)
    if progress:
        progress(0, len(frames))
    for done, frame in enumerate(frames, start=1):
        pages.append(image_lines(frame))
        if progress:
            progress(done, len(frames))
    return pages, "" if any(pages) else f"OCR found no text in the image ({len(frames)} page(s))", len(frames)


def _frames(data: bytes) -> Iterator[Image.Image]:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # Pillow's own limit, twice ours
        raise UnreadableText(f"larger than the {MAX_PIXELS // 1_000_000} megapixels OCR reads: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UnreadableText(f"not a readable image: {exc}") from exc
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise UnreadableText(f"an image of {width} x {height} pixels is too small to hold text")
    if width * height > MAX_PIXELS:
        raise UnreadableText(
            f"an image of {width:,} x {height:,} pixels is larger than "
            f"the {MAX_PIXELS // 1_000_000} megapixels OCR reads"
        )
    try:
        # Multi-page TIFFs are how many scanners save a document: each frame is a page.
        for frame in ImageSequence.Iterator(image):
            yield _smaller(frame.copy())
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or damaged pixel data
        raise UnreadableText(f"not a readable image: {exc}") from exc


def _smaller(image: Image.Image) -> Image.Image:
    """``image`` scaled down to MAX_SIDE: what RapidOCR would read anyway, at a fraction of the memory."""
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    return image


def _blank(image: Image.Image) -> bool:
    """Whether ``image`` is one flat colour (an empty page)."""
    low, high = image.convert("L").getextrema()
    return high - low < 16
