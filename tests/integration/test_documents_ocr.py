"""Scans and images read with the real RapidOCR models: Chinese and English text back from a
scanned PDF and a photo of a page, and a scanned PDF ingested end to end as a job that shows
its OCR progress, can be cancelled in the middle of a page and finishes on the next run.
"""

import difflib
import io
import time
from pathlib import Path

from core.knowledge.loaders import load
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from tests.pdf_documents import Page, scanned_pdf, text_image, text_pdf

CHINESE = "扫描件里的中文：知识库助手用 OCR 读取没有文字层的页面，并保留页码。"
ENGLISH = "Scanned English text: pages without a text layer are read by OCR, page by page."


def _accuracy(found: str, expected: str) -> float:
    """Share of the expected characters (spaces aside) that OCR gave back, in order."""
    a, b = "".join(found.split()), "".join(expected.split())
    matched = sum(block.size for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
    return matched / len(b)


def test_a_scanned_pdf_is_read_by_ocr_page_by_page_with_progress():
    scan = scanned_pdf(text_pdf([Page([CHINESE]), Page([ENGLISH])]))
    heard = []
    doc = load(Path("scan.pdf"), scan, progress=lambda done, total: heard.append((done, total)))
    first, second = doc.text.split("\n\n")
    assert _accuracy(first, CHINESE) >= 0.9 and _accuracy(second, ENGLISH) >= 0.9
    assert doc.pages == (1, 3) and doc.ocr_pages == 2 and doc.kind == "pdf"
    # Reported as each page is done (and again about every second while one is read).
    assert list(dict.fromkeys(h for h in heard if h[1])) == [(0, 2), (1, 2), (2, 2)]


def test_a_photo_of_a_page_is_read_by_ocr():
    image = io.BytesIO()
    text_image(["图片里的文字：端口 23333", "Text in a photo: port 23333"]).save(image, "JPEG", quality=90)
    doc = load(Path("photo.jpg"), image.getvalue())
    assert doc.kind == "image" and doc.pages == (1,)
    lines = doc.text.split("\n")
    assert _accuracy(lines[0], "图片里的文字：端口 23333") >= 0.9
    assert _accuracy(lines[1], "Text in a photo: port 23333") >= 0.9


def _wait(real_services, job_id, until, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = real_services.jobs.get(job_id)
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job still {job.status}: {job.detail}")


def test_a_scanned_pdf_ingested_as_a_job_shows_ocr_progress_cancels_and_resumes(real_services, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    pages = [Page([f"第 {n} 页。{CHINESE}"]) for n in range(1, 4)]
    (folder / "scan.pdf").write_bytes(scanned_pdf(text_pdf(pages)))
    bases = real_services.knowledge
    kb = bases.create("扫描件", "multilingual-e5-small-q4", SplitterSettings(chunk_size=60, chunk_overlap=0))

    job = real_services.start_ingest(kb, FolderInput(folder))
    running = _wait(real_services, job.id, lambda j: j.detail.get("ocr_pages_total"))
    assert running.detail["ocr_file"] == "scan.pdf" and running.detail["ocr_pages_total"] == 3
    real_services.jobs.cancel(job.id)
    started = time.monotonic()
    stopped = real_services.jobs.wait(job.id, timeout=60)
    assert stopped.status == "cancelled" and time.monotonic() - started < 5  # not at the end of the file
    assert bases.stats(kb).chunks == 0  # a file is the unit of resume: nothing of it was kept

    (source,) = bases.sources(kb)
    done = real_services.jobs.wait(real_services.start_refresh(kb, source).id, timeout=600)
    assert done.status == "done", done.error
    chunks = bases.chunk_table(kb)
    assert sorted(chunks["page"].astype(int)) == [1, 2, 3]
    for text, page in zip(chunks["text"], chunks["page"].astype(int), strict=True):
        assert _accuracy(text, f"第 {page} 页。{CHINESE}") >= 0.9
    assert bases.stats(kb).vectors == 3
