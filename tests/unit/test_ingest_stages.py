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


def test_the_next_group_is_embedded_while_the_last_one_is_written(bases, kb, tmp_path, fake_embeddings, monkeypatch):
    writes, embeds = [], []
    real_write, real_embed = Ingestion._write, fake_embeddings.embed_documents

    def slow_write(self, collection, write):
        started = time.monotonic()
        time.sleep(1.0)  # a slow disk or a big index: the embedding should not wait for it
        real_write(self, collection, write)
        writes.append((started, time.monotonic()))

    def embed(texts):
        embeds.append(time.monotonic())
        return real_embed(texts)

    monkeypatch.setattr(Ingestion, "_write", slow_write)
    fake_embeddings.embed_documents = embed
    report = _run(bases, kb, _folder(tmp_path / "src"), batch=2)  # groups of 16 chunks

    first_start, first_end = writes[0]
    assert any(first_start < at < first_end for at in embeds)  # embedding went on meanwhile
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


def test_chroma_keeps_only_vectors_and_the_records_keep_the_text(bases, kb, tmp_path):
    _run(bases, kb, _folder(tmp_path / "src", files=2), batch=8)
    stored = bases.collection(kb).get(include=["documents"])
    assert stored["ids"] and all(doc is None for doc in stored["documents"])
    assert "Paragraph 0 of file 1" in " ".join(bases.chunk_table(kb)["text"])
