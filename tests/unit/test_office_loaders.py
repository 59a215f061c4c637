"""Spreadsheets, slides, Word tables and e-books, read from files the tests write."""

import datetime
import io
import re
import zipfile
from pathlib import Path

import docx
import openpyxl
import pptx
import pytest
import xlwt
from hypothesis import given
from hypothesis import strategies as st
from pptx.util import Inches

from core.knowledge import loaders
from core.knowledge.loaders import load
from core.knowledge.reader_process import ReaderFailed
from core.knowledge.reading import UnreadableText
from core.knowledge.scanning import scan_folder
from core.knowledge.splitting import SplitterSettings, split_document
from tests.unit.test_hostile_documents import FUZZ, mutated


def _xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _zip(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


# --- xlsx ----------------------------------------------------------------------------------------


def test_each_sheet_is_a_section_headed_by_its_name_with_a_markdown_table():
    data = _xlsx(
        {
            "Sales 2024": [
                ["Quarterly sales"],
                [],
                ["Region", "Q1", None, "Opened"],
                ["North", 1.5, None, datetime.datetime(2024, 5, 1)],
                ["South | East", 0.1 + 0.2, "late", None],
            ],
            "Empty": [],
            "员工": [["名字", "城市"], ["张三", "北京"]],
        }
    )
    doc = load(Path("report.xlsx"), data)
    assert (doc.kind, doc.language) == ("xlsx", "markdown")
    assert doc.text == (
        "# Sales 2024\n\n"
        "Quarterly sales\n\n"
        "| Region | Q1 | column 3 | Opened |\n| --- | --- | --- | --- |\n"
        "| North | 1.5 |  | 2024-05-01 |\n"
        "| South \\| East | 0.3 | late |\n\n"
        "# 员工\n\n"
        "| 名字 | 城市 |\n| --- | --- |\n| 张三 | 北京 |"
    )


def test_every_chunk_of_a_long_sheet_names_its_sheet_and_columns():
    rows = [["Item", "Price", "Stock"], *([f"item {i}", i * 3, 1000 - i] for i in range(500))]
    doc = load(Path("stock.xlsx"), _xlsx({"Warehouse": rows}))
    pieces = split_document(doc.text, SplitterSettings(chunk_size=500, chunk_overlap=100), doc.language)
    assert len(pieces) > 20
    assert all(p.heading == "Warehouse" and "| Item | Price | Stock |" in p.text for p in pieces)
    holding = [p for p in pieces if "| item 450 | 1350 | 550 |" in p.text.splitlines()]
    assert len(holding) == 1


def test_an_xlsx_zip_bomb_is_refused_before_it_is_inflated():
    bomb = _zip({"[Content_Types].xml": b"<Types/>", "xl/worksheets/sheet1.xml": b" " * 60_000_000})
    assert len(bomb) < 200_000
    with pytest.raises(UnreadableText, match=r"its XML would unpack to 60 MB, more than the 50 MB a \.xlsx may hold"):
        load(Path("bomb.xlsx"), bomb)


def test_a_sheet_of_far_apart_cells_that_would_blow_up_as_a_table_is_refused():
    book = openpyxl.Workbook()
    for row in range(1, 301):
        book.active.cell(row=row, column=1, value="a")
        book.active.cell(row=row, column=16_000, value="z")
    out = io.BytesIO()
    book.save(out)
    with pytest.raises(UnreadableText, match="as a table, it would grow over 20 times its size"):
        load(Path("sparse.xlsx"), out.getvalue())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PK\x03\x04 not really a zip", "not a readable .xlsx file"),
        (_zip({"notes.txt": b"hello"}), "not a readable .xlsx file"),
        (_xlsx({"One": [], "Two": [[None, ""]]}), "every sheet is empty"),
    ],
)
def test_broken_or_empty_workbooks_are_skipped_with_a_reason(data, reason):
    with pytest.raises(UnreadableText, match=reason):
        load(Path("book.xlsx"), data)


# --- xls -----------------------------------------------------------------------------------------


def test_an_excel_97_workbook_is_read_like_an_xlsx():
    book = xlwt.Workbook()
    sheet = book.add_sheet("Old")
    dates = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for r, row in enumerate([["name", "score", "passed", "date"], ["Li", 9.5, True], ["Wang", 7, False]]):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    sheet.write(1, 3, datetime.date(2023, 9, 1), dates)
    out = io.BytesIO()
    book.save(out)
    doc = load(Path("scores.xls"), out.getvalue())
    assert doc.text == (
        "# Old\n\n| name | score | passed | date |\n| --- | --- | --- | --- |\n"
        "| Li | 9.5 | TRUE | 2023-09-01 |\n| Wang | 7 | FALSE |"
    )
    assert doc.kind == "xls"


def test_an_xlsx_named_xls_is_skipped_with_a_reason():
    with pytest.raises(UnreadableText, match=r"not a readable \.xls file"):
        load(Path("renamed.xls"), _xlsx({"S": [["a", "b"]]}))


# --- pptx ----------------------------------------------------------------------------------------


def _deck() -> bytes:
    deck = pptx.Presentation()
    intro = deck.slides.add_slide(deck.slide_layouts[1])
    intro.shapes.title.text = "Why quantise"
    body = intro.placeholders[1].text_frame
    body.text = "Smaller weights"
    detail = body.add_paragraph()
    detail.text = "AWQ keeps 4 bits"
    detail.level = 1
    intro.notes_slide.notes_text_frame.text = "Mention the 7B example."
    figures = deck.slides.add_slide(deck.slide_layouts[5])
    figures.shapes.title.text = "Figures"
    table = figures.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for (r, c), value in {(0, 0): "Model", (0, 1): "Memory", (1, 0): "7B", (1, 1): "4 GB"}.items():
        table.cell(r, c).text = value
    box = figures.shapes.add_textbox(Inches(1), Inches(5), Inches(4), Inches(1))
    box.text_frame.text = "Measured on one GPU."
    deck.slides.add_slide(deck.slide_layouts[6])  # a blank slide says nothing
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def test_slides_are_sections_with_titles_text_tables_and_notes():
    doc = load(Path("talk.pptx"), _deck())
    assert (doc.kind, doc.language) == ("pptx", "markdown")
    assert doc.text == (
        "# Slide 1: Why quantise\n\nSmaller weights\n  - AWQ keeps 4 bits\n\nNotes: Mention the 7B example.\n\n"
        "# Slide 2: Figures\n\n| Model | Memory |\n| --- | --- |\n| 7B | 4 GB |\n\nMeasured on one GPU."
    )


def test_the_splitter_cuts_a_deck_at_its_slides():
    doc = load(Path("talk.pptx"), _deck())
    pieces = split_document(doc.text, SplitterSettings(chunk_size=500, chunk_overlap=100), doc.language)
    assert [p.heading for p in pieces] == ["Slide 1: Why quantise", "Slide 2: Figures"]


@pytest.mark.parametrize(
    ("data", "error", "reason"),
    [
        (_zip({"ppt/media/image1.png": b"\0" * 60_000_000}), UnreadableText, r"60 MB, more than the 50 MB a \.pptx"),
        (b"random bytes, not a deck", UnreadableText, "not a readable .pptx file"),
    ],
)
def test_broken_decks_and_zip_bombs_are_skipped_with_a_reason(data, error, reason):
    with pytest.raises(error, match=reason):
        load(Path("deck.pptx"), data)


def test_a_deck_without_text_is_skipped_with_a_reason():
    deck = pptx.Presentation()
    deck.slides.add_slide(deck.slide_layouts[6])
    out = io.BytesIO()
    deck.save(out)
    with pytest.raises(UnreadableText, match="no slide has any text"):
        load(Path("blank.pptx"), out.getvalue())


# --- docx tables ---------------------------------------------------------------------------------


def test_word_tables_keep_their_columns_with_pipes_and_nested_tables_in_cells():
    document = docx.Document()
    document.add_paragraph("Table 1: prices")
    table = document.add_table(rows=3, cols=3)
    for row, values in zip(
        table.rows, [("Item", "Price | EUR", "Note"), ("apple", "1.5", ""), ("pear", "2", "")], strict=True
    ):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    inner = table.cell(2, 2).add_table(rows=1, cols=2)
    inner.cell(0, 0).text, inner.cell(0, 1).text = "ripe", "soft"
    out = io.BytesIO()
    document.save(out)
    doc = load(Path("prices.docx"), out.getvalue())
    rows = [line for line in doc.text.splitlines() if line.startswith("|")]
    assert rows[0] == "| Item | Price \\| EUR | Note |"
    assert all(len(re.findall(r"(?<!\\)\|", row)) == 4 for row in rows)  # three columns in every row
    assert "ripe soft" in rows[-1]


def test_a_long_word_table_is_cut_between_rows_with_its_caption_and_header():
    document = docx.Document()
    document.add_paragraph("Table 2: opening hours")
    table = document.add_table(rows=81, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Branch", "Hours"
    for i in range(1, 81):
        table.cell(i, 0).text, table.cell(i, 1).text = f"branch {i}", f"{i % 12 + 1} am to 6 pm"
    out = io.BytesIO()
    document.save(out)
    doc = load(Path("hours.docx"), out.getvalue())
    pieces = split_document(doc.text, SplitterSettings(chunk_size=400, chunk_overlap=100), doc.language)
    assert len(pieces) > 5
    for piece in pieces:
        assert "Table 2: opening hours" in piece.text and "| Branch | Hours |" in piece.text
    rows = [line for p in pieces for line in p.text.splitlines() if line.startswith("| branch ")]
    assert rows == [f"| branch {i} | {i % 12 + 1} am to 6 pm |" for i in range(1, 81)]


# --- epub ----------------------------------------------------------------------------------------

_CONTAINER = (
    b'<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
    b'<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
    b"</rootfiles></container>"
)


def _page(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
        f"<head><title>t</title></head><body>{body}</body></html>"
    ).encode()


def _epub(toc: str = "nav", chapter_two: bytes | None = None) -> bytes:
    manifest = (
        '<item id="c1" href="text/one.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="c2" href="text/chapter%20two.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="pic" href="images/cover.png" media-type="image/png"/>'
    )
    if toc == "nav":
        manifest += '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
        spine = "<spine>"
    else:
        manifest += '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
        spine = '<spine toc="ncx">'
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        f'<manifest>{manifest}</manifest>{spine}<itemref idref="c2"/><itemref idref="c1"/></spine></package>'
    )
    parts = {
        "mimetype": b"application/epub+zip",
        "META-INF/container.xml": _CONTAINER,
        "OEBPS/content.opf": opf.encode(),
        "OEBPS/text/one.xhtml": _page("<h1>Harvest</h1><p>Apples are picked in October.</p>"),
        "OEBPS/text/chapter two.xhtml": chapter_two
        or _page(
            "<p>Sow in spring.</p><table><tr><th>Crop</th><th>Month</th></tr>"
            "<tr><td>Pea</td><td>March</td></tr></table>"
        ),
        "OEBPS/images/cover.png": b"\x89PNG not read",
        "OEBPS/nav.xhtml": _page(
            '<nav epub:type="toc" xmlns:epub="http://www.idpf.org/2007/ops"><ol>'
            '<li><a href="text/chapter%20two.xhtml#start">Sowing</a></li>'
            '<li><a href="text/one.xhtml">Harvest time</a></li>'
            "</ol></nav>"
        ),
        "OEBPS/toc.ncx": (
            b'<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/"><navMap>'
            b'<navPoint id="p1"><navLabel><text>Sowing (NCX)</text></navLabel>'
            b'<content src="text/chapter%20two.xhtml"/></navPoint>'
            b"</navMap></ncx>"
        ),
    }
    return _zip(parts)


def test_epub_chapters_are_sections_in_reading_order_named_by_the_contents():
    doc = load(Path("garden.epub"), _epub())
    assert (doc.kind, doc.language) == ("epub", "markdown")
    assert doc.text == (
        "# Sowing\n\nSow in spring.\n\n| Crop | Month |\n| --- | --- |\n| Pea | March |\n\n"
        "# Harvest\n\nApples are picked in October."
    )


def test_epub_2_books_take_chapter_names_from_their_ncx():
    assert load(Path("garden.epub"), _epub(toc="ncx")).text.startswith("# Sowing (NCX)\n\nSow in spring.")


@pytest.mark.parametrize(
    ("data", "error", "reason"),
    [
        (_epub(chapter_two=b" " * 60_000_000), UnreadableText, r"60 MB, more than the 50 MB a \.epub may hold"),
        (_zip({"mimetype": b"application/epub+zip"}), UnreadableText, "not a readable .epub file"),
        (b"not a zip at all", UnreadableText, "not a readable .epub file"),
    ],
)
def test_broken_books_and_zip_bombs_are_skipped_with_a_reason(data, error, reason):
    with pytest.raises(error, match=reason):
        load(Path("book.epub"), data)


def _with_encryption(uris: list[str]) -> bytes:
    with zipfile.ZipFile(io.BytesIO(_epub())) as archive:
        parts = {info.filename: archive.read(info) for info in archive.infolist()}
    references = "".join(
        f'<enc:EncryptedData xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:CipherData>'
        f'<enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData>'
        for uri in uris
    )
    parts["META-INF/encryption.xml"] = (
        f'<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container">{references}</encryption>'
    ).encode()
    return _zip(parts)


def test_a_drm_book_is_skipped_with_a_reason_and_one_with_obfuscated_fonts_is_read():
    with pytest.raises(UnreadableText, match=r"encrypted \(DRM\)"):
        load(Path("shop.epub"), _with_encryption(["OEBPS/text/one.xhtml"]))
    assert "Apples are picked" in load(Path("fonts.epub"), _with_encryption(["OEBPS/fonts/serif.otf"])).text


def test_a_chapter_whose_compressed_data_is_corrupt_is_skipped_with_a_reason():
    data = bytearray(_epub())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("OEBPS/text/one.xhtml")
    local_header = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[local_header] |= 0x06  # a deflate block of the reserved type 3: zlib fails, not zipfile
    with pytest.raises(UnreadableText, match=r"not a readable \.epub file: .*decompressing"):
        load(Path("corrupt.epub"), bytes(data))


def test_an_empty_chapter_is_left_out_and_the_others_read():
    assert load(Path("book.epub"), _epub(chapter_two=_page(""))).text == "# Harvest\n\nApples are picked in October."


# --- the folder scan -----------------------------------------------------------------------------


def test_the_folder_scan_takes_office_files_and_books(tmp_path):
    for name in ("a.xlsx", "b.xls", "c.pptx", "d.epub", "e.xlsm"):
        (tmp_path / name).write_bytes(b"PK\x03\x04\x00\x00binary")
    (tmp_path / "f.ppt").write_bytes(b"\xd0\xcf\x11\xe0")
    found, skipped = scan_folder(tmp_path, 10_000_000)
    assert [f.path for f in found] == ["a.xlsx", "b.xls", "c.pptx", "d.epub", "e.xlsm"]
    assert [(s.path, s.reason) for s in skipped] == [("f.ppt", "binary")]


# --- fuzz: damaged files, and damaged XML inside whole zips ----------------------------------------

SEEDS = {
    "book.xlsx": _xlsx({"Sheet": [["名字", "端口"], ["a", 1], ["b", 2.5]]}),
    "talk.pptx": _deck(),
    "garden.epub": _epub(),
}


def _xls_seed() -> bytes:
    book = xlwt.Workbook()
    sheet = book.add_sheet("S")
    for r, row in enumerate([["名字", "端口"], ["a", 1]]):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _read_or_skip(name: str, data: bytes) -> None:
    """The file is read, or skipped with a reason; a parser's unforeseen failure (ReaderFailed) fails."""
    try:
        document = load(Path(name), data)
    except ReaderFailed as exc:
        pytest.fail(f"{name}: {exc}")
    except UnreadableText as exc:
        assert str(exc).strip()
    else:
        assert isinstance(document.text, str)


@pytest.fixture(scope="module", autouse=True)
def fuzz_budget():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loaders, "READ_SECONDS", 10.0)  # a hang shows in seconds, not the app's two minutes
        yield


@pytest.mark.parametrize("name", [*sorted(SEEDS), "old.xls"])
@FUZZ
@given(data=st.data())
def test_mutated_office_files_are_read_or_skipped_with_a_reason(name, data):
    seed = SEEDS.get(name) or _xls_seed()
    _read_or_skip(name, data.draw(mutated(seed), label="bytes"))


@pytest.mark.parametrize("name", sorted(SEEDS))
@FUZZ
@given(data=st.data())
def test_damaged_xml_in_office_files_is_read_or_skipped_with_a_reason(name, data):
    with zipfile.ZipFile(io.BytesIO(SEEDS[name])) as archive:
        parts = {info.filename: archive.read(info) for info in archive.infolist()}
    xml = sorted(n for n in parts if n.endswith((".xml", ".opf", ".xhtml", ".ncx", ".rels")))
    target = data.draw(st.sampled_from(xml), label="part")
    parts[target] = data.draw(mutated(parts[target]), label="xml")
    _read_or_skip(name, _zip(parts))
