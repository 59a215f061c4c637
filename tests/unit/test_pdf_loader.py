"""PDFs as people have them, read through the real reader process: reading order on two-column
pages, tables as Markdown tables (across a page break too), headers and footers dropped, the
line each page starts on, and files that cannot be read skipped with the reason.
"""

import io
import re
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from core.knowledge.file_chunks import page_of
from core.knowledge.loaders import load
from core.knowledge.reading import UnreadableText
from tests.pdf_documents import Page, Table, images_pdf, scanned_pdf, text_image, text_pdf

LEFT = [
    "左栏第一段：知识库助手按阅读顺序读取双栏页面，先读完左栏，再读右栏，句子不会被另一栏的文字打断。",
    "左栏第二段：每一行在换行处接起来，中文词语不会被拆开。",
]
RIGHT = [
    "Right column, first paragraph: a reader that goes line by line across the page would mix "
    "this sentence with the Chinese one beside it.",
    "Right column, second paragraph: it ends the page.",
]
ROWS = [["服务", "端口", "说明"]] + [[f"svc-{i}", str(8000 + i), f"第 {i} 个服务"] for i in range(24)]


def _load(data: bytes, name: str = "doc.pdf"):
    return load(Path(name), data)


def test_a_two_column_page_is_read_column_by_column_with_paragraphs_whole():
    doc = _load(text_pdf([Page(LEFT, RIGHT, title="双栏页面 Two columns")]))
    text = doc.text
    # Every paragraph comes out whole, wrapped lines joined (Chinese without a space).
    for paragraph in [*LEFT, *RIGHT]:
        assert paragraph in text
    order = [text.index(p) for p in ["双栏页面 Two columns", *LEFT, *RIGHT]]
    assert order == sorted(order)
    assert doc.kind == "pdf" and doc.pages == (1,)


def test_a_single_column_page_keeps_its_short_lines_apart():
    doc = _load(text_pdf([Page(["第一章 总则", "Install it with pip.", "然后运行 lmdeploy serve。"])]))
    assert doc.text.split("\n\n") == ["第一章 总则", "Install it with pip.", "然后运行 lmdeploy serve。"]


def test_a_table_becomes_a_markdown_table_right_after_its_caption():
    doc = _load(text_pdf([Page(["端口一览见下表。"], tables=[Table(ROWS[:5], "表 1：服务端口")])]))
    expected = "\n".join(
        [
            "表 1：服务端口",
            "| 服务 | 端口 | 说明 |",
            "| --- | --- | --- |",
            *(f"| svc-{i} | {8000 + i} | 第 {i} 个服务 |" for i in range(4)),
        ]
    )
    assert expected in doc.text


def test_a_table_across_a_page_break_is_one_table_with_one_header_row():
    first = Page(["上一页的正文。" * 10], tables=[Table(ROWS[:13], "表 2：全部服务")])
    second = Page([], tables=[Table([ROWS[0], *ROWS[13:]])])  # the header row repeated, as printed
    doc = _load(text_pdf([first, second, Page(["表格之后的正文。"])]))
    table = re.findall(r"^\|.*\|$", doc.text, flags=re.MULTILINE)
    assert table[0] == "| 服务 | 端口 | 说明 |" and table.count(table[0]) == 1
    assert [row.split(" | ")[0] for row in table[2:]] == [f"| svc-{i}" for i in range(24)]
    assert "表 2：全部服务\n| 服务" in doc.text
    lines = doc.text.split("\n")
    # The table is whole on the page it starts on; the text after it is on page 3.
    assert page_of(doc.pages, lines.index("| svc-23 | 8023 | 第 23 个服务 |") + 1) == 1
    assert page_of(doc.pages, lines.index("表格之后的正文。") + 1) == 3


def test_headers_and_footers_repeated_on_most_pages_are_dropped():
    pages = [Page([f"第 {n} 页的正文：知识库的内容。"]) for n in range(1, 5)]
    doc = _load(text_pdf(pages, header="ACME 内部资料 · 仅供学习", footer="第 {page} 页 / 共 4 页"))
    assert "ACME" not in doc.text and "共 4 页" not in doc.text
    assert [line for line in doc.text.split("\n") if line] == [f"第 {n} 页的正文：知识库的内容。" for n in range(1, 5)]


def test_a_line_on_two_pages_of_five_is_kept():
    pages = [Page(["Overview" if n in (1, 3) else f"Section {n}", f"Body of page {n}."]) for n in range(1, 6)]
    assert _load(text_pdf(pages)).text.count("Overview") == 2


def test_each_page_knows_the_line_it_starts_on():
    doc = _load(text_pdf([Page([f"Page {n} first line.", f"Page {n} second line."]) for n in range(1, 4)]))
    lines = doc.text.split("\n")
    assert len(doc.pages) == 3
    for number, start in enumerate(doc.pages, start=1):
        assert lines[start - 1] == f"Page {number} first line."


def test_a_pdf_that_needs_a_password_is_skipped_saying_so():
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf([Page(["机密内容。"])]))))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    with pytest.raises(UnreadableText, match="encrypted PDF; it needs a password"):
        _load(out.getvalue())


def test_a_pdf_with_a_broken_cross_reference_table_is_still_read():
    data = text_pdf([Page(["Text behind a broken xref."])])
    broken = re.sub(rb"startxref\s+\d+", b"startxref\n999999", data)
    assert broken != data
    assert "Text behind a broken xref." in _load(broken).text


def test_a_pdf_of_blank_scans_is_skipped_with_the_reason():
    from PIL import Image

    blank = Image.new("L", (1654, 2339), 255)
    with pytest.raises(UnreadableText, match=r"no text layer, and OCR found no text on its 2 page\(s\)"):
        _load(images_pdf([blank, blank]))


def test_a_preview_counts_the_pages_that_need_ocr_without_reading_them():
    scan = scanned_pdf(text_pdf([Page(["Scanned page."]), Page(["另一页扫描件。"])]))
    doc = load(Path("scan.pdf"), scan, read_scans=False)
    assert (doc.text, doc.ocr_pages) == ("", 2)
    image = io.BytesIO()
    text_image(["A photo of a page."]).save(image, "PNG")
    assert load(Path("photo.png"), image.getvalue(), read_scans=False).ocr_pages == 1


def test_chunks_of_a_pdf_know_their_page_through_the_real_ingestion(bases, tmp_path):
    from core.knowledge.ingest import Ingestion
    from core.knowledge.sources import FolderInput, prepare
    from core.knowledge.splitting import SplitterSettings

    folder = tmp_path / "src"
    folder.mkdir()
    pages = [Page([f"第 {n} 页：" + f"知识库第 {n} 页的内容，用来检查页码。" * 6]) for n in range(1, 4)]
    (folder / "book.pdf").write_bytes(text_pdf(pages, footer="- {page} -"))
    (folder / "notes.md").write_text("# Notes\n\nNo pages here.\n")
    kb = bases.create("pages", "multilingual-e5-small-q4", SplitterSettings(chunk_size=60, chunk_overlap=0))
    ready = prepare(bases, kb, FolderInput(folder))
    Ingestion(bases, kb, ready.source, ready.root, max_file_bytes=1_000_000).run()

    chunks = bases.chunk_table(kb)
    book = chunks[chunks["path"] == "book.pdf"]
    assert len(book) > 3
    for text, page in zip(book["text"], book["page"].astype(int), strict=True):
        assert text.startswith(f"第 {page} 页") or f"第 {page} 页的内容" in text
    assert set(book["page"]) == {1, 2, 3}
    assert chunks[chunks["path"] == "notes.md"]["page"].isna().all()


def test_the_preview_says_how_many_pages_need_ocr_and_about_how_long_it_takes(tmp_path):
    from core.knowledge.ocr import PAGES_PER_SECOND
    from core.knowledge.preview import preview_folder
    from core.knowledge.splitting import SplitterSettings

    (tmp_path / "scan.pdf").write_bytes(scanned_pdf(text_pdf([Page(["Scanned page one."]), Page(["第二页。"])])))
    (tmp_path / "book.pdf").write_bytes(text_pdf([Page(["A page with a text layer."])]))
    report = preview_folder(tmp_path, SplitterSettings(60, 0), embeddings=None, max_file_bytes=10**6)
    assert report.ocr_pages == 2 and report.ocr_seconds == round(2 / PAGES_PER_SECOND, 1)
    assert not report.skipped  # the scan is counted, not refused
    assert [(s["path"], s["page"]) for s in report.samples] == [("book.pdf", 1)]
