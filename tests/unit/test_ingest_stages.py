"""The ingestion job's three stages overlap (read, embed, write), and its progress moves per file."""

import threading
import time

import pytest

from core.knowledge import ingest
from core.knowledge.ingest import Ingestion
from core.knowledge.sources import FolderInput, prepare
from core.knowledge.splitting import SplitterSettings


@pytest.fixture
def kb(bases):
    return bases.create("docs", "multilingual-e5-small-q4", SplitterSettings(chunk_size=120, chunk_overlap=0))


def _folder(root, files=12):
    root.mkdir()
    for n in range(files):
        body = "\n\n".join(f"Paragraph {k} of file {n} talks about topic {n * 100 + k}." for k in range(6))
        (root / f"doc{n:02d}.md").write_text(f"# File {n}\n\n{body}\n")
    return root


def _run(bases, kb, folder, batch, ctx=None):
    ready = prepare(bases, kb, FolderInput(folder))
    return Ingestion(bases, kb, ready.source, ready.root, 1_000_000, embed_batch=batch, ctx=ctx).run()


class Progress:
    """A job context that keeps every progress report."""

    def __init__(self):
        self.reports = []

    def check_cancelled(self):
        pass

    def progress(self, **report):
        self.reports.append(report)


def test_the_next_group_is_embedded_while_the_last_one_is_written(bases, kb, tmp_path, fake_embeddings):
    records = bases.records
    real_replace = records.replace_files
    seen = []

    def slow_first_write(*args, **kwargs):
        if not seen:
            before = fake_embeddings.embedded
            deadline = time.monotonic() + 10
            while fake_embeddings.embedded == before and time.monotonic() < deadline:
                time.sleep(0.01)
            seen.append(fake_embeddings.embedded > before)
        return real_replace(*args, **kwargs)

    records.replace_files = slow_first_write
    report = _run(bases, kb, _folder(tmp_path / "src"), batch=2)  # groups of 16 chunks

    assert seen == [True]  # embedding went on while the first group's records were written
    stats = bases.stats(kb)
    assert stats.chunks == stats.vectors == report.chunks_added > 32


def test_after_a_failed_write_no_later_group_is_recorded_and_a_rerun_completes(bases, kb, tmp_path):
    folder = _folder(tmp_path / "src")
    records = bases.records
    real_replace = records.replace_files
    records.replace_files = lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))
    with pytest.raises(OSError, match="disk full"):
        _run(bases, kb, folder, batch=2)
    assert bases.stats(kb).chunks == 0

    records.replace_files = real_replace
    report = _run(bases, kb, folder, batch=2)

    stats = bases.stats(kb)
    assert report.files_ingested == 12 and stats.chunks == stats.vectors


def test_the_file_counter_moves_as_files_are_embedded_not_only_when_a_group_is_written(bases, kb, tmp_path):
    records = bases.records
    written = threading.Event()
    real_replace = records.replace_files

    def replace(*args, **kwargs):
        written.set()
        return real_replace(*args, **kwargs)

    records.replace_files = replace
    ctx = Progress()
    ctx.progress = lambda **report: ctx.reports.append((written.is_set(), report))

    _run(bases, kb, _folder(tmp_path / "src"), batch=8, ctx=ctx)  # 36 chunks: one group (64) of all the files

    before_any_write = [r["files_done"] for was_written, r in ctx.reports if not was_written]
    assert max(before_any_write) == 12  # every file counted once its chunks were embedded
    assert {n for n in before_any_write if 0 < n < 12}  # in steps, not all at once


def test_on_a_gpu_the_job_sends_bigger_batches_than_the_cpu_setting(bases, kb, tmp_path, fake_embeddings):
    fake_embeddings.device = "cuda:0"
    _run(bases, kb, _folder(tmp_path / "src", files=40), batch=8)
    assert max(fake_embeddings.calls) > 8
    assert max(fake_embeddings.calls) <= ingest.GPU_BATCH
