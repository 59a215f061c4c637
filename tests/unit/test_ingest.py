import sqlite3

import pytest

from core.errors import FolderNotFound, JobCancelled
from core.knowledge import file_chunks
from core.knowledge.ingest import Ingestion
from core.knowledge.records import Records
from core.knowledge.sources import FolderInput, prepare
from core.knowledge.splitting import Piece, SplitterSettings

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


def test_a_base_split_by_an_older_splitter_is_split_again_on_refresh(bases, kb, tmp_path, fake_embeddings, monkeypatch):
    folder = _corpus(tmp_path / "src")
    (folder / "faq.md").write_text("# FAQ\n\n## How do I install it?\n\npip install lmdeploy\n")
    real_split = file_chunks.split_document

    def old_split(text, *args):
        # What the first splitter did: the heading of an empty section came back as a chunk.
        heading_only = [Piece("# FAQ", 1, 1, "FAQ")] if text.startswith("# FAQ") else []
        return heading_only + real_split(text, *args)

    with monkeypatch.context() as patched:
        patched.setattr(file_chunks, "split_document", old_split)
        patched.setattr(file_chunks, "SPLITTER_VERSION", 1)
        _ingest(bases, kb, folder)
    assert "# FAQ" in set(bases.chunk_table(kb)["text"])
    embedded = fake_embeddings.embedded

    # A git refresh that names no changed file still splits the old files again.
    ready = prepare(bases, kb, FolderInput(folder))
    report = Ingestion(bases, kb, ready.source, ready.root, 1_000_000, changed=set()).run()

    assert report.files_ingested == 4 and report.chunks_removed == 1
    assert fake_embeddings.embedded == embedded  # the other chunks kept their ids and vectors
    assert "# FAQ" not in set(bases.chunk_table(kb)["text"])
    stats = bases.stats(kb)
    clean = bases.create("clean", EMBEDDING, SplitterSettings(chunk_size=200, chunk_overlap=40))
    _ingest(bases, clean, folder)
    assert stats.chunks == stats.vectors == bases.stats(clean).chunks


def test_a_database_from_before_columns_opens_and_keeps_its_chunks(tmp_path):
    path = tmp_path / "knowledge.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE file (source_id TEXT, path TEXT, sha256 TEXT, size INTEGER, n_chunks INTEGER,
                           updated REAL, PRIMARY KEY (source_id, path));
        CREATE TABLE chunk (id TEXT PRIMARY KEY, kb_id TEXT, source_id TEXT, path TEXT, seq INTEGER,
                            start_line INTEGER, end_line INTEGER, heading TEXT NOT NULL DEFAULT '',
                            text TEXT NOT NULL, terms TEXT NOT NULL DEFAULT '');
        INSERT INTO file VALUES ('src', 'a.md', 'abc', 10, 1, 0);
        INSERT INTO chunk VALUES ('c1', 'kb', 'src', 'a.md', 0, 1, 2, '', 'AWQ 量化', 'awq');
        """
    )
    old.close()

    records = Records(path)

    assert records.recovered is None
    assert records.files("src")["a.md"].splitter_version == 0
    [chunk] = records.chunks("kb")
    assert (chunk.text, chunk.start_line, chunk.start_col, chunk.end_col) == ("AWQ 量化", 1, None, None)


def test_chunks_of_one_long_line_are_stored_with_distinct_places(bases, kb, tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "long.md").write_text("# 量化\n\n" + "LMDeploy 支持 AWQ 4bit 权重量化，速度更快。" * 60 + "\n")
    _ingest(bases, kb, folder)
    chunks = bases.chunk_table(kb, "long.md")
    places = list(zip(chunks["start_line"], chunks["end_line"], chunks["start_col"], chunks["end_col"], strict=True))
    assert len(places) > 2 and len(set(places)) == len(places)
    # Only chunks that would otherwise share their lines carry columns.
    on_one_line = chunks["start_line"].eq(3) & chunks["end_line"].eq(3)
    assert chunks["start_col"].notna().eq(on_one_line).all()
