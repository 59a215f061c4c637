import pytest

from core.errors import FolderNotFound, JobCancelled
from core.knowledge.ingest import Ingestion
from core.knowledge.sources import FolderInput, prepare
from core.knowledge.splitting import SplitterSettings

EMBEDDING = "multilingual-e5-small-q4"


def _corpus(root):
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "quant.md").write_text(
        "# 量化\n\n" + "LMDeploy 支持 AWQ 4bit 权重量化和 KV cache int8 量化。\n" * 30, encoding="utf-8"
    )
    (root / "docs" / "serve.md").write_text("# Serving\n\n" + "Start the api_server with one command.\n" * 30)
    (root / "README.md").write_text("# Project\n\nA toolkit for compressing and serving models.\n")
    (root / "image.png").write_bytes(b"\x89PNG\x00\x00")
    return root


def _ingest(bases, kb, folder, ctx=None, batch=8):
    ready = prepare(bases, kb, FolderInput(folder))
    return Ingestion(bases, kb, ready.source, ready.root, max_file_bytes=1_000_000, embed_batch=batch, ctx=ctx).run()


@pytest.fixture
def kb(bases):
    return bases.create("docs", EMBEDDING, SplitterSettings(chunk_size=200, chunk_overlap=40))


def test_ingest_stores_chunks_with_paths_and_lines(bases, kb, tmp_path):
    report = _ingest(bases, kb, _corpus(tmp_path / "src"))
    stats = bases.stats(kb)
    assert report.files_found == 3 and report.files_ingested == 3
    assert [s.path for s in report.skipped] == ["image.png"]
    assert stats.chunks == stats.vectors == report.chunks_added > 3
    chunks = bases.chunk_table(kb, "docs/quant.md")
    assert chunks["start_line"].iloc[0] == 1
    assert chunks["start_line"].is_monotonic_increasing
    assert set(bases.chunk_table(kb)["path"]) == {"README.md", "docs/quant.md", "docs/serve.md"}


def test_reingest_of_unchanged_folder_adds_and_embeds_nothing(bases, kb, tmp_path, fake_embeddings):
    folder = _corpus(tmp_path / "src")
    first = _ingest(bases, kb, folder)
    embedded = fake_embeddings.embedded
    second = _ingest(bases, kb, folder)
    assert second.files_unchanged == 3 and second.chunks_added == 0
    assert fake_embeddings.embedded == embedded
    assert bases.stats(kb).chunks == bases.stats(kb).vectors == first.chunks_added


def test_changed_file_reembeds_only_new_chunks_and_deleted_file_is_removed(bases, kb, tmp_path, fake_embeddings):
    folder = _corpus(tmp_path / "src")
    _ingest(bases, kb, folder)
    before = bases.stats(kb).chunks
    embedded = fake_embeddings.embedded
    with (folder / "docs" / "serve.md").open("a") as handle:
        handle.write("\n## New section\n\nA brand new paragraph about GPUs.\n")
    (folder / "README.md").unlink()

    report = _ingest(bases, kb, folder)

    assert report.files_ingested == 1 and report.files_removed == 1
    assert 1 <= fake_embeddings.embedded - embedded <= 2
    stats = bases.stats(kb)
    assert stats.chunks == stats.vectors == before + report.chunks_added - report.chunks_removed
    assert "README.md" not in set(bases.chunk_table(kb)["path"])


def test_cancelled_run_then_rerun_equals_one_clean_run(bases, kb, tmp_path, fake_embeddings):
    folder = _corpus(tmp_path / "src")

    class CancelAfterAFewBatches:
        calls = 0

        def check_cancelled(self):
            self.calls += 1
            if self.calls > 5:
                raise JobCancelled()

        def progress(self, **_):
            pass

    with pytest.raises(JobCancelled):
        _ingest(bases, kb, folder, ctx=CancelAfterAFewBatches(), batch=1)
    assert bases.stats(kb).vectors > 0
    _ingest(bases, kb, folder)
    resumed = bases.stats(kb)
    embedded_with_cancel = fake_embeddings.embedded

    clean = bases.create("clean", EMBEDDING, SplitterSettings(chunk_size=200, chunk_overlap=40))
    _ingest(bases, clean, folder)
    assert resumed.chunks == resumed.vectors == bases.stats(clean).chunks
    assert embedded_with_cancel == fake_embeddings.embedded - embedded_with_cancel  # nothing embedded twice


def test_vectors_written_before_a_crash_are_not_duplicated(bases, kb, tmp_path, fake_embeddings):
    folder = _corpus(tmp_path / "src")
    records = bases.records
    real_replace = records.replace_files
    records.replace_files = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash"))
    with pytest.raises(RuntimeError):
        _ingest(bases, kb, folder, batch=1000)
    records.replace_files = real_replace
    assert bases.stats(kb).vectors > 0 and bases.stats(kb).chunks == 0
    embedded = fake_embeddings.embedded

    _ingest(bases, kb, folder)

    stats = bases.stats(kb)
    assert stats.chunks == stats.vectors
    assert fake_embeddings.embedded == embedded  # found in the store, not embedded again


def test_missing_folder_is_a_clear_error(bases, kb, tmp_path):
    with pytest.raises(FolderNotFound) as caught:
        _ingest(bases, kb, tmp_path / "nope")
    assert "nope" in str(caught.value)
