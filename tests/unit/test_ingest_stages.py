"""The ingestion job's three stages overlap (read, embed, write), and its progress moves per file."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from core.errors import JobCancelled
from core.knowledge import file_chunks, ingest, reading_pool
from core.knowledge.ingest import Ingestion
from core.knowledge.scanning import SkippedFile, scan_folder
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


def _chunks(bases, kb):
    table = bases.chunk_table(kb)
    columns = ("path", "start_line", "end_line", "text", "terms")
    return sorted(zip(*(table[c] for c in columns), strict=True))


def test_on_a_gpu_files_are_read_in_processes_and_cut_exactly_as_in_the_thread(
    bases, tmp_path, fake_embeddings, monkeypatch
):
    folder = _folder(tmp_path / "src", files=70)
    (folder / "notes.txt").write_text("Plain text is read in a process too.\n")
    settings = SplitterSettings(chunk_size=120, chunk_overlap=0)
    by_thread = bases.create("by-thread", "multilingual-e5-small-q4", settings)
    by_processes = bases.create("by-processes", "multilingual-e5-small-q4", settings)
    fake_embeddings.max_tokens = 40
    fake_embeddings.count_tokens = fake_embeddings.token_counter = len  # picklable: a builtin
    _run(bases, by_thread, folder, batch=8)
    pools = []
    real_pool = ingest.ReadingPool

    def counted(*args):
        pools.append(args[1])
        return real_pool(*args)

    monkeypatch.setattr(ingest, "ReadingPool", counted)
    monkeypatch.setattr(reading_pool.os, "cpu_count", lambda: 4)
    fake_embeddings.device = "cuda:0"
    report = _run(bases, by_processes, folder, batch=8)

    assert pools == [2]  # the machine's cores less two, for the embedding and the app
    assert report.files_ingested == 71 and not report.skipped
    assert _chunks(bases, by_processes) == _chunks(bases, by_thread)
    assert not _reading_processes()  # the reading processes ended with the job


def test_a_slow_file_read_in_the_job_does_not_hold_back_the_reading_processes(
    bases, kb, tmp_path, fake_embeddings, monkeypatch
):
    # A document the job reads itself (a reader worker starting, OCR) comes early in the folder;
    # the files the processes read must reach the embedder meanwhile, or the GPU waits for it.
    folder = _folder(tmp_path / "src", files=70)
    (folder / "a-slow-document.txt").write_text("A document the job's own thread reads.\n")
    fake_embeddings.device = "cuda:0"
    fake_embeddings.token_counter = len
    monkeypatch.setattr(reading_pool.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(ingest, "pooled", lambda path: path != "a-slow-document.txt")
    handed_on, pooled_all_handed_on, waited = [], threading.Event(), []
    real_account, real_read = Ingestion._account, Ingestion._read

    def account(self, file, result):
        handed_on.append(file.path)
        if sum(path.startswith("doc") for path in handed_on) == 70:
            pooled_all_handed_on.set()
        return real_account(self, file, result)

    def read(self, file, digest):
        if file.path == "a-slow-document.txt":
            waited.append(pooled_all_handed_on.wait(timeout=20))
        return real_read(self, file, digest)

    monkeypatch.setattr(Ingestion, "_account", account)
    monkeypatch.setattr(Ingestion, "_read", read)
    report = _run(bases, kb, folder, batch=8)

    assert waited == [True]  # the slow document did not stop the others
    assert report.files_ingested == 71 and not report.skipped
    assert not _reading_processes()


def test_a_cancel_ends_the_reading_processes_at_once(bases, kb, tmp_path, fake_embeddings):
    folder = _folder(tmp_path / "src", files=80)
    fake_embeddings.device = "cuda:0"
    fake_embeddings.token_counter = len

    class CancelSoon(Progress):
        def check_cancelled(self):
            if len(self.reports) > 3:
                raise JobCancelled()

    with pytest.raises(JobCancelled):
        _run(bases, kb, folder, batch=8, ctx=CancelSoon())
    assert not _reading_processes()


def test_reading_processes_only_on_a_gpu_for_many_text_files(kb, monkeypatch):
    plan = file_chunks.ChunkPlan(kb, "source", SplitterSettings(), len, 512)
    monkeypatch.setattr(reading_pool.os, "cpu_count", lambda: 64)
    assert reading_pool.pool_size(plan, 1000, on_gpu=True) == reading_pool.POOL_MAX_PROCESSES == 8
    assert reading_pool.pool_size(plan, 1000, on_gpu=False) == 0  # on a CPU the model is the slow part
    assert reading_pool.pool_size(plan, 10, on_gpu=True) == 0  # too few files to pay for starting them
    unpicklable = file_chunks.ChunkPlan(kb, "source", SplitterSettings(), lambda text: len(text), 512)
    assert reading_pool.pool_size(unpicklable, 1000, on_gpu=True) == 0
    # Files with a reader worker of their own (and its OCR progress) stay in the job's thread.
    assert [reading_pool.pooled(p) for p in ("a.md", "b.py", "README", "c.pdf", "d.docx", "e.png")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_each_reading_process_keeps_its_tokenizer_and_math_to_one_thread():
    # Eight processes each starting a thread per core would fight the job's own threads.
    env = reading_pool.reader_environment()
    assert (env["TOKENIZERS_PARALLELISM"], env["RAYON_NUM_THREADS"], env["OMP_NUM_THREADS"]) == ("false", "1", "1")


def test_reading_processes_do_not_run_the_callers_main_script_again(tmp_path):
    # multiprocessing's workers import the main module again: under ``streamlit run`` or a
    # script importing torch that was seconds per process before the first file; a script
    # without a main guard would even ingest again in each of them.
    folder = _folder(tmp_path / "src", files=6)
    started = tmp_path / "started.txt"
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            from core.knowledge import reading_pool
            from core.knowledge.file_chunks import ChunkPlan
            from core.knowledge.records import KnowledgeBase
            from core.knowledge.scanning import scan_folder
            from core.knowledge.splitting import SplitterSettings

            with open({str(started)!r}, "a") as out:
                out.write("started\\n")
            kb = KnowledgeBase("kb", "docs", "multilingual-e5-small-q4", {{}}, 0, 0)
            files, _ = scan_folder(Path({str(folder)!r}), 1_000_000)
            plan = ChunkPlan(kb, "source", SplitterSettings(120, 0), len, 40)
            pool = reading_pool.ReadingPool(plan, 2, [(f, "") for f in files])
            print(sum(len(pool.next(timeout=60).chunks) for _ in files))
            pool.close()
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=reading_pool.reader_environment(),
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 6
    assert started.read_text() == "started\n"  # once: in the script's own process only


def test_a_reading_process_that_dies_on_a_file_skips_that_file_only(kb, tmp_path):
    folder = _folder(tmp_path / "src", files=4)
    (folder / "doc01.md").write_text("# Dies\n\nThis file's reading process is killed.\n")
    pool, files = _reading(kb, folder, _die_on_dies, processes=1)
    try:
        got = [pool.next(timeout=60) for _ in files]
    finally:
        pool.close()
    skipped = [r for r in got if isinstance(r, SkippedFile)]
    assert [(s.path, s.reason) for s in skipped] == [("doc01.md", "unreadable")]
    assert "reading process stopped" in skipped[0].detail
    assert [len(r.chunks) > 0 for r in got if not isinstance(r, SkippedFile)] == [True] * 3  # a new process read on
    assert not _reading_processes()


def test_a_failure_inside_a_reading_process_reaches_the_job_as_itself(kb, tmp_path):
    folder = _folder(tmp_path / "src", files=3)
    (folder / "doc01.md").write_text("# Boom\n\nCounting this file's tokens fails.\n")
    pool, _ = _reading(kb, folder, _fail_on_boom, processes=2)
    try:
        assert len(pool.next(timeout=60).chunks) > 0
        with pytest.raises(ValueError, match="no tokens for this"):
            pool.next(timeout=60)
    finally:
        pool.close()


def test_the_reading_processes_read_only_so_far_ahead_of_the_job(kb, tmp_path, monkeypatch):
    # Memory stays bounded on any corpus: files are read ahead of the embedder only so far.
    monkeypatch.setattr(reading_pool, "_AHEAD_FILES", 3)
    pool, files = _reading(kb, _folder(tmp_path / "src", files=10), len, processes=2)
    try:
        deadline = time.monotonic() + 60
        while pool._taken < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)  # time enough to take more, were it allowed
        assert pool._taken == 3
        assert len([pool.next(timeout=60) for _ in files]) == 10
    finally:
        pool.close()


def test_a_plan_a_reading_process_cannot_load_stops_the_job_saying_so(kb, tmp_path):
    # Not every file skipped one by one as if each had killed its process.
    pool, _ = _reading(kb, _folder(tmp_path / "src", files=3), _Unloadable(), processes=2)
    try:
        with pytest.raises(reading_pool.ReadingProcessFailed, match="could not load the job's settings"):
            pool.next(timeout=60)
    finally:
        pool.close()
    assert not _reading_processes()


def test_a_token_counter_from_the_callers_main_script_keeps_reading_in_the_job(kb):
    # A fresh process cannot import the caller's script: such a plan is read in the job's thread.
    def count(text):
        return len(text)

    count.__module__ = "__main__"
    plan = file_chunks.ChunkPlan(kb, "source", SplitterSettings(), count, 512)
    assert reading_pool.pool_size(plan, 1000, on_gpu=True) == 0


class _Unloadable:
    """A token counter that pickles here and fails to load anywhere."""

    def __call__(self, text):
        return len(text)

    def __reduce__(self):
        return (_refuse, ())


def _refuse():
    raise ValueError("not here")


def _reading(kb, folder, count_tokens, processes):
    """A reading pool started on every file of ``folder``, and the files."""
    files, _ = scan_folder(folder, 1_000_000)
    plan = file_chunks.ChunkPlan(kb, "source", SplitterSettings(120, 0), count_tokens, 40)
    pool = reading_pool.ReadingPool(plan, processes, [(f, "") for f in files])
    return pool, files


def _fail_on_boom(text):
    if text.startswith("# Boom"):
        raise ValueError("no tokens for this")
    return len(text)


def _die_on_dies(text):
    if text.startswith("# Dies"):
        os._exit(9)  # as the system kills a process
    return len(text)


def _reading_processes():
    return [
        p for p in psutil.Process().children(recursive=True) if "reading_pool import _serve" in " ".join(p.cmdline())
    ]
