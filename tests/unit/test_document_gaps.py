"""Claims of the document readers that no other test backs: memory that does not grow with a
PDF's pages, WebP and (multi-frame) TIFF images read by the real OCR models, and a long table of
a PDF stored in chunks that each repeat its header row.
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.knowledge.loaders import load
from core.knowledge.scanning import scan_folder
from tests.pdf_documents import Page, Table, text_image, text_pdf

ROOT = Path(__file__).resolve().parents[2]

# --- memory on a long PDF ------------------------------------------------------------------------

# Run in a fresh Python per PDF: the reader's peak resident memory (VmHWM, reset once the reader's
# libraries and pdfminer's CMaps are loaded by a one-page PDF) less the memory before the read.
_PEAK = """
import gc, json, sys
from core.knowledge.pdf import read_pdf
from tests.pdf_documents import Page, text_pdf

def pages(n):
    return [
        Page(
            [
                f"Page {i}, first paragraph: the manual explains how models are installed, served "
                "and monitored, and what each setting of the server means. " * 3,
                f"第 {i} 页第二段：知识库助手逐页读取长文档，每页读完就释放它的解析结果。" * 3,
            ],
            title=f"Chapter {i}",
        )
        for i in range(1, n + 1)
    ]

def status(key):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(key)) * 1024

count = int(sys.argv[1])
data = text_pdf(pages(count), header="ACME manual", footer="- {page} -")
read_pdf(text_pdf(pages(1)))
gc.collect()
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak starts again from here
texts, reason, scans = read_pdf(data)
peak = status("VmHWM:")
print(json.dumps({"growth": peak - before, "pages": len(texts), "last": texts[-1], "scans": scans}))
"""


def _reading_peak(pages: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, str(pages)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's /proc to reset the peak memory"
)
def test_reading_a_500_page_pdf_takes_about_the_memory_of_a_50_page_one():
    small, large = _reading_peak(50), _reading_peak(500)
    assert (small["pages"], large["pages"], large["scans"]) == (50, 500, 0)
    assert "Page 500, first paragraph" in large["last"] and "ACME manual" not in large["last"]
    # Each page's parsed objects take about 1 MB (a 500-page PDF would need some 450 MB if they
    # were kept); the text itself, 500 pages of it, is about half a megabyte.
    slack = 12 * 2**20
    assert large["growth"] < 2 * small["growth"] + slack, (small, {k: large[k] for k in ("growth", "pages")})


# --- WebP and TIFF images by OCR ------------------------------------------------------------------


def _image_bytes(images: list, kind: str) -> bytes:
    out = io.BytesIO()
    if kind == "TIFF":
        images[0].save(out, "TIFF", save_all=True, append_images=images[1:], compression="tiff_deflate")
    else:
        images[0].save(out, kind, quality=90)
    return out.getvalue()


def _words(text: str) -> set[str]:
    return set(text.lower().split())


def test_a_webp_photo_is_read_by_ocr():
    data = _image_bytes([text_image(["Webp invoice 4417", "Ledger total paid"], width=700, size=36)], "WEBP")
    doc = load(Path("receipt.webp"), data)
    assert (doc.kind, doc.pages, doc.ocr_pages) == ("image", (1,), 1)
    assert {"webp", "invoice", "4417", "ledger", "total", "paid"} <= _words(doc.text)


def test_each_frame_of_a_multi_page_tiff_is_a_page_read_by_ocr():
    frames = [
        text_image(["Tiff frame one", "harbour 2231"], width=600, size=36),
        text_image(["Second frame", "lighthouse 9075"], width=600, size=36),
    ]
    doc = load(Path("scan.tiff"), _image_bytes(frames, "TIFF"))
    assert doc.kind == "image" and doc.ocr_pages == 2 and len(doc.pages) == 2 and doc.pages[0] == 1
    lines = doc.text.split("\n")
    first, second = "\n".join(lines[: doc.pages[1] - 1]), "\n".join(lines[doc.pages[1] - 1 :])
    assert {"tiff", "frame", "one", "harbour", "2231"} <= _words(first)
    assert {"second", "frame", "lighthouse", "9075"} <= _words(second)
    assert "lighthouse" not in first.lower()


def test_webp_and_tif_files_are_scanned_and_ingested_with_their_pages(bases, tmp_path):
    from core.knowledge.ingest import Ingestion
    from core.knowledge.sources import FolderInput, prepare
    from core.knowledge.splitting import SplitterSettings

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "receipt.webp").write_bytes(
        _image_bytes([text_image(["Webp receipt", "amount 3318"], width=600, size=36)], "WEBP")
    )
    frames = [text_image([f"Page {n} of the fax", f"parcel {n}{n}40"], width=600, size=36) for n in (1, 2, 3)]
    (folder / "fax.tif").write_bytes(_image_bytes(frames, "TIFF"))
    found, skipped = scan_folder(folder, max_bytes=10_000_000)
    assert sorted(f.path for f in found) == ["fax.tif", "receipt.webp"] and not skipped

    # Chunks smaller than two pages' text, so that each page makes a chunk of its own.
    kb = bases.create("photos", "multilingual-e5-small-q4", SplitterSettings(chunk_size=40, chunk_overlap=0))
    ready = prepare(bases, kb, FolderInput(folder))
    report = Ingestion(bases, kb, ready.source, ready.root, max_file_bytes=10_000_000).run()
    assert report.files_ingested == 2 and not report.skipped and report.kinds == {"image": 2}
    chunks = bases.chunk_table(kb)
    fax = chunks[chunks["path"] == "fax.tif"]
    assert sorted(fax["page"].astype(int)) == [1, 2, 3]
    for text, page in zip(fax["text"], fax["page"].astype(int), strict=True):
        assert f"{page}{page}40" in text and f"page {page}" in text.lower()
    (receipt,) = chunks[chunks["path"] == "receipt.webp"].itertuples()
    assert receipt.page == 1 and {"webp", "receipt", "3318"} <= _words(receipt.text)


# --- a long table of a PDF ------------------------------------------------------------------------

HEADER = "| 服务 | 端口 | 说明 |"
SEPARATOR = "| --- | --- | --- |"
ROWS = [["服务", "端口", "说明"]] + [[f"svc-{i}", str(8000 + i), f"第 {i} 个服务"] for i in range(40)]


def test_a_long_pdf_table_is_stored_in_chunks_that_each_repeat_its_caption_and_header(bases, tmp_path):
    from core.knowledge.ingest import Ingestion
    from core.knowledge.sources import FolderInput, prepare
    from core.knowledge.splitting import SplitterSettings

    folder = tmp_path / "tables"
    folder.mkdir()
    # 40 rows over two pages, the header printed again on the second, as reports do.
    first = Page(["端口一览见下表。"], tables=[Table(ROWS[:25], "表 3：全部服务端口")])
    second = Page([], tables=[Table([ROWS[0], *ROWS[25:]])])
    (folder / "ports.pdf").write_bytes(text_pdf([first, second, Page(["表格之后的正文。"])]))
    kb = bases.create("tables", "multilingual-e5-small-q4", SplitterSettings(chunk_size=200, chunk_overlap=0))
    ready = prepare(bases, kb, FolderInput(folder))
    Ingestion(bases, kb, ready.source, ready.root, max_file_bytes=1_000_000).run()

    texts = list(bases.chunk_table(kb)["text"])
    with_rows = [text for text in texts if "| svc-" in text]
    assert len(with_rows) >= 4  # the table is longer than a chunk: it had to be split
    for text in with_rows:
        lines = text.split("\n")
        assert "表 3：全部服务端口" in lines, text
        at = lines.index(HEADER)
        assert lines[at + 1] == SEPARATOR and all(line.startswith("| svc-") for line in lines[at + 2 :]), text
    rows = [line for text in with_rows for line in text.split("\n") if line.startswith("| svc-")]
    assert rows == [f"| svc-{i} | {8000 + i} | 第 {i} 个服务 |" for i in range(40)]  # each row once, in order
    assert sum(text.count(HEADER) for text in texts) == len(with_rows)  # the header nowhere else
