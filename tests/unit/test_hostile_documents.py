"""Hostile documents: every loader and the zip reader either read a file or skip it with a reason.

Random and mutated bytes (flipped, inserted, deleted, truncated, repeated) from a small valid
seed of each type, then hand-written attacks: bombs, deep nesting, huge fields, broken encodings.
No input may crash a reader, hang past the per-file time budget, or take more than its memory.
"""

import functools
import io
import json
import os
import re
import struct
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from datetime import timedelta
from pathlib import Path

import docx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter

from core.app_files import LEDGER, AppFiles
from core.errors import ArchiveRefused
from core.knowledge import loaders, reader_process
from core.knowledge.archives import SKIP_REASONS as ENTRY_SKIP_REASONS
from core.knowledge.archives import extract_zip
from core.knowledge.loaders import LoadedDocument, load
from core.knowledge.reader_process import OverBudget, ReaderFailed
from core.knowledge.reading import UnreadableText
from core.knowledge.scanning import scan_folder
from tests.documents import pdf_file, zip_of

# While fuzzing, a file that hangs shows within this budget instead of the app's two minutes.
FUZZ_SECONDS = 10.0
FUZZ = settings(
    # HOSTILE_EXAMPLES=2000 fuzzes for longer, by hand; the suite keeps to well under a minute.
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "25")),
    deadline=timedelta(seconds=FUZZ_SECONDS + 10),  # a hang the budget misses fails here
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(autouse=True, scope="module")
def fuzz_budget():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loaders, "READ_SECONDS", FUZZ_SECONDS)
        yield


# --- seeds: one small valid file of each type ---------------------------------------------------


def _text_pdf(*pages: list[str], extra: str = "") -> bytes:
    """A minimal PDF with one page per list of text lines; ``extra`` goes into the catalog."""
    objects = [
        f"<< /Type /Catalog /Pages 2 0 R {extra}>>",
        "",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for lines in pages:
        content = "BT /F1 12 Tf 72 720 Td " + " 0 -16 Td ".join(f"({line}) Tj" for line in lines) + " ET"
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream")
        objects.append(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {len(objects)} 0 R >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    return pdf_file(objects)


def _pypdf_seed() -> bytes:
    """The same PDF as pypdf writes it: compressed content streams, so mutations reach zlib."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_text_pdf(["Install with pip"], ["Serve it"]))))
    for page in writer.pages:
        page.compress_content_streams()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _docx_seed(compression: int) -> bytes:
    """A Word file from python-docx, cut down to the parts mammoth reads (the template's 800 kB
    of styles take half a second to parse), stored or deflated.
    """
    document = docx.Document()
    document.add_heading("Guide", 1)
    document.add_paragraph("Install with pip, then run the server.")
    document.add_paragraph("first step", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(1, 0).text = "port", "23333"
    full = io.BytesIO()
    document.save(full)
    keep = ("[Content_Types].xml", "_rels/.rels", "word/document.xml", "word/_rels/document.xml.rels")
    return zip_of({name: zipfile.ZipFile(full).read(name) for name in keep}, compression)


NOTEBOOK = json.dumps(
    {
        "cells": [
            {"cell_type": "markdown", "source": ["# 安装\n", "Use `pip`.\n"]},
            {"cell_type": "code", "source": "print('hi')", "outputs": [{"text": "hi"}]},
        ],
        "metadata": {"kernelspec": {"language": "python"}},
        "nbformat": 4,
    },
    ensure_ascii=False,
).encode()
HTML = (
    '<html><head><meta charset="gbk"><style>p{}</style></head><body><h1>标题</h1>'
    "<p>Hello <b>world</b><br>line</p><ul><li>a<ul><li>b</li></ul></li></ul>"
    "<table><tr><th>k</th><th>v</th></tr><tr><td>port</td><td>23333</td></tr></table>"
    "<pre><code>pip install x</code></pre><script>alert(1)</script></body></html>"
).encode("gbk")
SEEDS = {
    "notes.md": "# 标题\n\nSome *text* with `code`.\n\n- item\n".encode(),
    "notes.txt": "第一行\r\n第二行".encode("gbk"),
    "guide.rst": b"Title\n=====\n\n.. note::\n   Indented.\n",
    "tool.py": b'def f(x):\n    """Doc."""\n    return x\n',
    "settings.json": b'{"top_k": 4}\n',
    "analysis.ipynb": NOTEBOOK,
    "page.html": HTML,
    "plain.pdf": _text_pdf(["Hello world", "second line"], ["page two"]),
    "compressed.pdf": _pypdf_seed(),
    "stored.docx": _docx_seed(zipfile.ZIP_STORED),
    "deflated.docx": _docx_seed(zipfile.ZIP_DEFLATED),
    "table.csv": '名字,端口\n"a, b",1\nc,"2\n3"\n'.encode(),
    "table.tsv": b"name\tport\nx\t1\n",
}
# Bytes that mean something to some parser, for insertions.
TOKENS = [
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    "中文".encode("gbk"),
    "中文".encode(),
    b"\xe4\xb8",
    b"<div>",
    b"</",
    b"<!--",
    b"&lol;",
    b"<![CDATA[",
    b"[",
    b"{",
    b'"',
    b"\\u",
    b",",
    b'"",',
    b"\t",
    b"\r",
    b"\n",
    b"```",
    b"obj",
    b"endobj",
    b"stream\n",
    b" 0 R",
    b"<<",
    b">>",
    b"/Count 999999999",
    b"PK\x03\x04",
    b"PK\x01\x02",
    b"\xff\xff\xff\xff",
]


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    """``seed`` with a few bytes flipped, inserted, deleted, truncated or repeated."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "token", "delete", "truncate", "repeat"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            data[min(at, len(data) - 1)] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[at:]
        elif op == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 32))] * draw(st.integers(2, 50))
    return bytes(data)


def _read_or_skip(name: str, data: bytes) -> tuple[str, str, float]:
    """("read", kind, seconds) or ("skipped", reason, seconds); fails on anything else."""
    started = time.monotonic()
    try:
        document = load(Path(name), data)
    except ReaderFailed as exc:  # the reader's catch-all: a parser failed in an unforeseen way
        pytest.fail(f"{name}: {exc}")
    except UnreadableText as exc:
        outcome = ("skipped", str(exc))
        assert outcome[1].strip(), "a skipped file needs a reason"
    else:
        assert isinstance(document, LoadedDocument) and isinstance(document.text, str)
        outcome = ("read", document.kind)
    seconds = time.monotonic() - started
    assert seconds < loaders.READ_SECONDS + 5, f"{name} took {seconds:.1f} s"
    return (*outcome, seconds)


# --- fuzz: every loader -------------------------------------------------------------------------


def test_every_seed_is_read():
    for name, seed in SEEDS.items():
        assert _read_or_skip(name, seed)[0] == "read", name


@pytest.mark.parametrize("name", sorted(SEEDS))
@FUZZ
@given(data=st.data())
def test_mutated_documents_are_read_or_skipped_with_a_reason(name, data):
    _read_or_skip(name, data.draw(mutated(SEEDS[name]), label="bytes"))


@pytest.mark.parametrize("name", ["x.md", "x.txt", "x.py", "x.ipynb", "x.html", "x.pdf", "x.docx", "x.csv", "README"])
@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_read_or_skipped_with_a_reason(name, data):
    _read_or_skip(name, data)


# --- fuzz: the zip reader -----------------------------------------------------------------------

ZIP_SEEDS = {
    "deflated": zip_of({"README.md": b"# Docs\n" * 20, "guide/": b"", "guide/install.md": b"pip install x\n" * 10}),
    "stored": zip_of({"课程/笔记.md": "笔记".encode(), "a.txt": b"abc"}, zipfile.ZIP_STORED),
    "bzip2": zip_of({"a.md": b"bzip2 " * 50}, zipfile.ZIP_BZIP2),
    "lzma": zip_of({"a.md": b"lzma " * 50}, zipfile.ZIP_LZMA),
}


def _extract(data: bytes) -> None:
    """Extract ``data`` into a fresh folder: extracted, or refused with a reason; nothing lands outside."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            skipped = extract_zip(data, root / "out", files=AppFiles(root))
        except ArchiveRefused as exc:
            assert exc.params["reason"]
            assert {p.name for p in root.iterdir()} <= {LEDGER}  # nothing written
            return
        assert all(entry.reason in ENTRY_SKIP_REASONS for entry in skipped)
        assert {p.name for p in root.iterdir()} <= {LEDGER, "out"}


@pytest.mark.parametrize("seed", sorted(ZIP_SEEDS))
@FUZZ
@given(data=st.data())
def test_mutated_zips_are_extracted_or_refused_with_a_reason(seed, data):
    _extract(data.draw(mutated(ZIP_SEEDS[seed]), label="bytes"))


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes_as_a_zip_are_refused_with_a_reason(data):
    _extract(data)


# --- hand-written hostile documents -------------------------------------------------------------


def _deep_pdf() -> bytes:
    return _text_pdf(["deep"], extra="/Deep " + "[" * 50_000 + "]" * 50_000 + " ")


def _huge_count_pdf() -> bytes:
    return _text_pdf(["one real page"]).replace(b"/Count 1", b"/Count 2147483647")


def _same_page_pdf(times: int) -> bytes:
    """A page tree listing one page ``times`` times: a small file with a huge page count."""
    return _text_pdf(["the same page"]).replace(b"/Kids [5 0 R] /Count 1", b"/Kids [" + b"5 0 R " * times + b"]")


def _content_bomb_pdf() -> bytes:
    """One page whose content stream inflates from 0.2 MB to 70 MB of text operators."""
    content = zlib.compress(b"BT /F1 12 Tf 72 720 Td (a) Tj ET\n" * 2_000_000, 9)
    pdf = _text_pdf(["x"])
    start = pdf.index(b"<< /Length ")
    end = pdf.index(b"endstream", start) + len(b"endstream")
    stream = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream"
    return pdf[:start] + stream + pdf[end:]  # the xref is off now: pypdf finds the objects again


def _docx_with(document_xml: bytes, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    parts = {name: zipfile.ZipFile(io.BytesIO(SEEDS["stored.docx"])).read(name) for name in _DOCX_PARTS}
    return zip_of({**parts, "word/document.xml": document_xml}, compression)


_DOCX_PARTS = ("[Content_Types].xml", "_rels/.rels", "word/_rels/document.xml.rels")
_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
_LAUGHS = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))


def _xml_laughs_docx() -> bytes:
    xml = f'<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY l0 "lol">{_LAUGHS}]>'
    xml += f"<w:document {_W}><w:body><w:p><w:r><w:t>&l9;</w:t></w:r></w:p></w:body></w:document>"
    return _docx_with(xml.encode())


def _deep_docx() -> bytes:
    inner = "<w:p><w:r><w:t>deep</w:t></w:r></w:p>"
    nested = "<w:tbl><w:tr><w:tc>" * 20_000 + inner + "</w:tc></w:tr></w:tbl>" * 20_000
    return _docx_with(f"<w:document {_W}><w:body>{nested}</w:body></w:document>".encode())


@functools.cache
def _bomb_docx() -> bytes:
    # 120 MB of paragraphs deflate to about 0.3 MB.
    paragraphs = "<w:p><w:r><w:t>a</w:t></w:r></w:p>" * 3_500_000
    return _docx_with(f"<w:document {_W}><w:body>{paragraphs}</w:body></w:document>".encode())


def _mixed_encodings() -> bytes:
    return b"# ok\n" + "中文".encode("gbk") + b"\xff\xfe\x80" + "中文".encode() + b"\xe4\xb8" + b"\n" * 3


HOSTILE = {
    # name: (file name, bytes, expected outcome: "read", or a pattern for the reason[, time budget])
    "pdf-nested-50k-deep": ("deep.pdf", _deep_pdf, "read|broken PDF"),
    "pdf-page-count-2^31": ("count.pdf", _huge_count_pdf, "read|broken PDF"),
    # pdfminer reads a page listed again only once.
    "pdf-one-page-listed-50k-times": ("pages.pdf", lambda: _same_page_pdf(50_000), r"read|took longer than 2 s", 2.0),
    "pdf-content-stream-bomb": ("bomb.pdf", _content_bomb_pdf, r"took longer than 2 s|broken PDF", 2.0),
    "html-nested-40k-deep": ("deep.html", lambda: b"<div><font>" * 20_000 + b"words", "read"),
    "html-billion-laughs": (
        "laughs.html",
        lambda: f'<!DOCTYPE html [<!ENTITY l0 "lol">{_LAUGHS}]><p>&l9;</p>'.encode(),
        "read",
    ),
    "xml-billion-laughs": (
        "laughs.xml",
        lambda: f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY l0 "lol">{_LAUGHS}]><x>&l9;</x>'.encode(),
        "read",
    ),
    "docx-billion-laughs": ("laughs.docx", _xml_laughs_docx, "not a readable .docx file: .*amplification"),
    "docx-nested-20k-deep": ("deep.docx", _deep_docx, "read|not a readable .docx"),
    "docx-zip-bomb-120MB": ("bomb.docx", _bomb_docx, r"its XML would unpack to 1\d\d MB, more than the 50 MB"),
    "ipynb-50MB-string": (
        "big.ipynb",
        lambda: b'{"cells": [{"cell_type": "markdown", "source": "' + b"a" * 50_000_000 + b'"}]}',
        "read",
    ),
    "ipynb-nested-100k-deep": ("deep.ipynb", lambda: b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "ipynb-sources-not-text": (
        "odd.ipynb",
        lambda: b'{"cells": [{"cell_type": "code", "source": [1, null, {"a": 2}, "x = 1"]}, 7]}',
        "read",
    ),
    "csv-one-100MB-line": ("one-line.csv", lambda: b"x" * 100_000_000, "line longer than 1,000,000 characters"),
    "csv-10M-fields": ("fields.csv", lambda: b"a," * 10_000_000, "line longer than 1,000,000 characters"),
    "csv-10-lines-just-under-1M": ("under.csv", lambda: (b"a" * 999_999 + b"\n") * 10, "field larger than field limit"),
    # A Markdown table writes its header once (the splitter repeats it per chunk, not per row).
    "csv-131k-column-name-over-1M-rows": ("header.csv", lambda: b"h" * 131_000 + b"\n" + b"a\n" * 1_000_000, "read"),
    "csv-200k-rows-ending-in-cr": ("mac.csv", lambda: b"name,port\r" + b"alpha,23333\r" * 200_000, "read"),
    "md-nul-bytes": ("nul.md", lambda: b"# title\n\x00\x00body\x00", "NUL bytes|not text"),
    "md-utf8-gbk-mix": ("mixed.md", _mixed_encodings, "read|not text|not valid"),
    "py-utf16-without-bom": ("code.py", lambda: "x = 1\n".encode("utf-16-le"), "read|NUL bytes|not text"),
    "csv-nul-and-gbk": ("bad.csv", lambda: "名字,端口\n".encode("gbk") + b"a\x00b,1\n\xff,2", "read|NUL|not text"),
    "html-utf8-gbk-mix": ("mixed.html", lambda: b"<p>" + _mixed_encodings() + b"</p>", "read|not text|not valid"),
    "md-10MB-utf8-gbk-mix": ("mixed-big.md", lambda: _mixed_encodings() * 500_000, "read|not text|not valid"),
    "py-utf8-bom-then-invalid": (
        "bom.py",
        lambda: b"\xef\xbb\xbf\x80def f(): pass\n",
        "not valid utf-8 after its byte-order",
    ),
    "txt-utf16-bom-then-lone-surrogate": ("bom.txt", lambda: b"\xff\xfe\x00\xd8a\x00", "not valid utf-16 after its"),
    "html-utf16-bom-then-odd-length": ("bom.html", lambda: b"\xff\xfe<\x00p", "not valid utf-16 after its"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_document(case):
    name, make, expected, *budget = HOSTILE[case]
    data = make()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loaders, "READ_SECONDS", budget[0] if budget else 60.0)
        outcome, detail, seconds = _read_or_skip(name, data)
    _report(case, len(data), outcome, detail, seconds)
    assert re.search(expected, "read" if outcome == "read" else detail), detail


def _report(case: str, size: int, outcome: str, detail: str, seconds: float) -> None:
    """A line per hostile case on stderr (``-s`` shows it), for the record of what each one does."""
    sys.stderr.write(f"HOSTILE {case} ({size / 1e6:.2f} MB) -> {outcome}: {detail[:120]} [{seconds:.2f} s]\n")


def test_a_file_over_the_time_budget_is_skipped_and_the_next_one_read(monkeypatch):
    book = _text_pdf(*[[f"line {j} of page {i}" for j in range(40)] for i in range(400)])  # about 3 s
    monkeypatch.setattr(loaders, "READ_SECONDS", 0.5)
    started = time.monotonic()
    with pytest.raises(OverBudget, match=r"took longer than 0\.5 s to read"):
        load(Path("book.pdf"), book)
    _report("pdf-400-pages-with-a-0.5s-budget", len(book), "skipped", "took longer", time.monotonic() - started)
    assert time.monotonic() - started < 3
    monkeypatch.setattr(loaders, "READ_SECONDS", 30.0)
    assert "page two" in load(Path("small.pdf"), SEEDS["plain.pdf"]).text


MEMORY_HOGS = {
    # 2 million empty objects: 6 MB of JSON, some 250 MB once parsed.
    "ipynb-2M-objects": ("wide.ipynb", lambda: b'{"cells": [' + b"{}," * 2_000_000 + b"{}]}"),
    # markdownify writes up to 1000 cells for a colspan: 0.5 MB of HTML, 40 MB of Markdown.
    "html-20k-colspan-1000": ("wide.html", lambda: b"<table><tr>" + b"<td colspan=1000>x</td>" * 20_000),
}


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux only")
@pytest.mark.parametrize("case", sorted(MEMORY_HOGS))
def test_a_file_over_the_memory_budget_is_skipped_and_the_next_one_read(case, monkeypatch):
    name, make = MEMORY_HOGS[case]
    data = make()
    monkeypatch.setattr(loaders, "READ_MEMORY_MB", 64)
    started = time.monotonic()
    with pytest.raises(OverBudget, match="needed more than 64 MB to read"):
        load(Path(name), data)
    _report(f"{case}-with-a-64MB-budget", len(data), "skipped", "needed more than 64 MB", time.monotonic() - started)
    assert load(Path("ok.ipynb"), NOTEBOOK).kind == "notebook"


def test_a_reader_that_dies_skips_the_file_and_the_next_one_is_read(monkeypatch):
    monkeypatch.setattr(loaders, "READ_SECONDS", 60.0)
    load(Path("warm.pdf"), SEEDS["plain.pdf"])  # leaves a started worker waiting
    worker = reader_process._idle[-1]
    outcome: list[BaseException | None] = []
    reading = threading.Thread(target=lambda: outcome.append(_raised(load, Path("slow.pdf"), _same_page_pdf(50_000))))
    reading.start()
    while worker in reader_process._idle:
        time.sleep(0.05)
    time.sleep(0.5)  # the file is on its way
    worker._process.kill()  # as the system's out-of-memory killer would
    reading.join(30)
    assert isinstance(outcome[0], ReaderFailed) and "the reader stopped while reading it" in str(outcome[0])
    assert "page two" in load(Path("small.pdf"), SEEDS["plain.pdf"]).text


def _raised(function, *args) -> BaseException | None:
    try:
        function(*args)
    except BaseException as exc:  # noqa: BLE001 - handed to the test
        return exc
    return None


def test_documents_are_skipped_with_a_reason_when_no_worker_starts(monkeypatch):
    def no_process(memory_mb, ocr=False):
        raise OSError("cannot start processes here")

    monkeypatch.setattr(reader_process, "_Worker", no_process)
    monkeypatch.setattr(reader_process, "_idle", [])
    monkeypatch.setattr(reader_process, "_no_workers_until", 0.0)
    for _ in range(2):  # the second without trying again
        with pytest.raises(ReaderFailed, match="the document reader process could not start: cannot start processes"):
            load(Path("a.pdf"), SEEDS["plain.pdf"])
    assert reader_process._no_workers_until > time.monotonic()
    assert load(Path("a.md"), SEEDS["notes.md"]).kind == "markdown"  # plain text needs no worker


# --- hostile archives ---------------------------------------------------------------------------


def _declaring(data: bytes, size: int) -> bytes:
    """The one-entry zip ``data`` with both headers declaring ``size`` uncompressed bytes."""
    buf = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        struct.pack_into("<I", buf, buf.find(signature) + offset, size)
    return bytes(buf)


ZIP_BOMBS = {
    "zip-100MB-of-zeros": (lambda: zip_of({"zeros.md": bytes(100_000_000)}), "compressed 1\\d{2,3} to 1"),
    "zip-entry-declaring-4GB": (
        lambda: _declaring(zip_of({"big.md": bytes(1000)}), 0xFFFFFFFE),
        r"would unpack to 4295\.0 MB",
    ),
    "zip-entry-declaring-less-than-it-holds": (
        lambda: _declaring(zip_of({"small.md": b"x" * 5000}), 100),
        "damaged|more data than its header declares",
    ),
    "zip-20001-entries": (lambda: zip_of({f"{i}.md": b"" for i in range(20_001)}), "20001 entries"),
}


@pytest.mark.parametrize("case", sorted(ZIP_BOMBS))
def test_zip_bombs_are_refused_before_anything_is_written(case):
    make, expected = ZIP_BOMBS[case]
    data = make()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, pytest.raises(ArchiveRefused) as refused:
        extract_zip(data, Path(tmp) / "out", files=AppFiles(Path(tmp)))
    _report(case, len(data), "refused", refused.value.params["reason"], time.monotonic() - started)
    assert re.search(expected, refused.value.params["reason"])


def test_nested_zips_are_stored_as_files_and_never_opened(tmp_path):
    inner = zip_of({"zeros.md": bytes(10_000_000)})  # a bomb one level down
    for level in range(3):
        inner = zip_of({f"level{level}.zip": inner, f"notes{level}.md": b"# n\n"})
    started = time.monotonic()
    assert extract_zip(inner, tmp_path / "out", files=AppFiles(tmp_path)) == []
    _report("zip-nested-3-deep-with-a-10MB-bomb-inside", len(inner), "extracted", "", time.monotonic() - started)
    found, skipped = scan_folder(tmp_path / "out", 10_000_000)
    assert [f.path for f in found] == ["notes2.md"]
    assert [(s.path, s.reason) for s in skipped] == [("level2.zip", "binary")]


# --- the whole path: a folder of hostile files ingested -----------------------------------------


def test_ingesting_hostile_files_reads_or_skips_each_with_a_reason(bases, tmp_path, monkeypatch):
    from core.knowledge.ingest import Ingestion
    from core.knowledge.scanning import SKIP_REASONS
    from core.knowledge.sources import FolderInput, prepare
    from core.knowledge.splitting import SplitterSettings

    monkeypatch.setattr(loaders, "READ_SECONDS", 3.0)
    folder = tmp_path / "hostile"
    folder.mkdir()
    for case, (name, make, _, *budget) in HOSTILE.items():
        if not budget and len(data := make()) < 500_000:  # the large ones take seconds each
            (folder / f"{case}-{name}").write_bytes(data)
    (folder / "slow.pdf").write_bytes(_text_pdf(*[[f"line {j} of page {i}" for j in range(40)] for i in range(400)]))
    for name, seed in SEEDS.items():
        (folder / f"seed-{name}").write_bytes(seed)
    kb = bases.create("hostile", "multilingual-e5-small-q4", SplitterSettings(chunk_size=200, chunk_overlap=40))
    ready = prepare(bases, kb, FolderInput(folder))

    report = Ingestion(bases, kb, ready.source, ready.root, max_file_bytes=1_000_000, embed_batch=8).run()

    read = set(bases.records.files(ready.source.id))
    skipped = {s.path: s for s in report.skipped}
    assert read | set(skipped) == {p.name for p in folder.iterdir()}
    assert not read & set(skipped)
    assert all(s.reason in SKIP_REASONS and (s.detail or s.reason != "unreadable") for s in skipped.values())
    assert {f"seed-{name}" for name in SEEDS} <= read
    assert skipped["slow.pdf"].detail == "took longer than 3 s to read"
