"""Image files and the reading order of OCR boxes, without running the OCR models: boxes come
from a fake engine, and the images here are ones the reader refuses or finds blank before any
model runs (the real models are exercised in tests/integration/test_documents_ocr.py).
"""

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from core.knowledge import ocr
from core.knowledge.layout import Box, page_lines
from core.knowledge.loaders import load
from core.knowledge.reading import UnreadableText
from core.knowledge.scanning import scan_folder


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class _FakeEngine:
    """Answers as RapidOCR does: [corners, text, score] per line found, in no particular order."""

    def __init__(self, found):
        self.found = found

    def __call__(self, image):
        return self.found, [0.0, 0.0, 0.0]


def _line(x0, top, x1, bottom, text, score=0.95):
    return [[[x0, top], [x1, top], [x1, bottom], [x0, bottom]], text, score]


def test_ocr_lines_of_a_two_column_scan_come_back_in_reading_order(monkeypatch):
    left = ["左栏第一行：扫描件也要按阅读", "顺序读出，先读完左栏。", "左栏另起一段。"]
    right = ["Right column, first line of a", "paragraph that wraps here.", "Second paragraph."]
    found = []
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        top = 100 + i * 60 + (60 if i == 2 else 0)  # a paragraph gap before the third line
        found.append(_line(820, top, 820 + (700 if i < 1 else 500), top + 40, b))
        found.append(_line(100, top + 3, 100 + (680 if i < 1 else 400), top + 43, a))
    found.append(_line(600, 30, 700, 60, "noise", score=0.2))  # below RapidOCR's own threshold
    monkeypatch.setattr(ocr, "engine", lambda: _FakeEngine(found))
    image = Image.new("L", (1600, 600), 255)
    image.paste(0, (100, 100, 110, 110))  # not blank
    assert ocr.image_lines(image) == [
        "左栏第一行：扫描件也要按阅读顺序读出，先读完左栏。",
        "",
        "左栏另起一段。",
        "",
        "Right column, first line of a paragraph that wraps here.",
        "",
        "Second paragraph.",
    ]


def test_boxes_on_one_line_are_read_left_to_right():
    boxes = [
        Box(300, 10, 400, 30, "lmdeploy"),
        Box(10, 12, 280, 31, "安装命令：pip install"),
        Box(10, 36, 90, 56, "下一行"),
    ]
    assert page_lines(boxes, 800) == ["安装命令：pip install lmdeploy", "下一行"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not a readable image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable image"),
        (_png(Image.new("L", (20, 20), 255)), "too small to hold text"),
    ],
    ids=["0-byte", "truncated", "icon"],
)
def test_images_that_cannot_hold_text_are_skipped_with_the_reason(data, reason):
    with pytest.raises(UnreadableText, match=reason):
        load(Path("scan.png"), data)


def _png_header(width: int, height: int) -> bytes:
    """The start of a PNG declaring ``width`` x ``height`` pixels, with no pixel data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunks = b""
    for name, body in ((b"IHDR", header), (b"IDAT", zlib.compress(b"\x00" * 64))):
        chunks += struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))
    return b"\x89PNG\r\n\x1a\n" + chunks


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded():
    with pytest.raises(UnreadableText, match=r"12,000 x 10,000 pixels is larger than the 100 megapixels"):
        load(Path("huge.png"), _png_header(12_000, 10_000))
    with pytest.raises(UnreadableText, match=r"larger than the 100 megapixels OCR reads"):
        load(Path("huger.png"), _png_header(20_000, 20_000))  # past Pillow's own limit


def test_a_blank_10000_by_10000_image_is_read_in_budget_and_found_empty():
    data = _png(Image.new("1", (10_000, 10_000), 1))
    with pytest.raises(UnreadableText, match=r"OCR found no text in the image \(1 page\(s\)\)"):
        load(Path("blank.png"), data)


def test_image_files_are_scanned_for_ocr_and_files_only_named_like_images_are_binaries(tmp_path):
    (tmp_path / "page.png").write_bytes(_png(Image.new("L", (200, 100), 255)))
    (tmp_path / "photo.JPG").write_bytes(b"\xff\xd8\xff\x00not a jpeg")
    found, skipped = scan_folder(tmp_path, max_bytes=1_000_000)
    assert [f.path for f in found] == ["page.png"]
    assert [(s.path, s.reason) for s in skipped] == [("photo.JPG", "binary")]


def test_a_detector_line_joining_both_columns_is_cut_at_the_gutter():
    left = [Box(100, top, 700, top + 30, f"左栏第{n}行文字", joined=True) for n, top in enumerate((100, 150, 250))]
    right = [Box(760, top, 1360, top + 30, f"Right line {n}", joined=True) for n, top in enumerate((100, 150, 250))]
    merged = Box(100, 200, 1360, 230, "左栏第九行文字 Right line 9", joined=True)  # one box over the gutter
    title = Box(100, 20, 1360, 60, "一个横跨两栏的标题 A title across both columns", joined=True)
    lines = [line for line in page_lines([*left, *right, merged, title], 1460) if line]
    assert lines == [
        "一个横跨两栏的标题 A title across both columns",
        "左栏第0行文字左栏第1行文字左栏第九行文字左栏第2行文字",
        "Right line 0 Right line 1 Right line 9 Right line 2",
    ]
