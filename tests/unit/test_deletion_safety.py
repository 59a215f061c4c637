"""Every destructive operation leaves the user's own files alone, byte for byte.

The user's folder is placed where it could be mistaken for the app's: outside the data folder,
inside it, behind a link (outside and inside), and as the data folder's parent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import NotAppCreated
from core.knowledge.sources import FolderInput, UploadInput
from core.knowledge.splitting import SplitterSettings
from core.services import Services, build_services
from tests.fakes import HashEmbeddings

PLACES = [
    "outside the data folder",
    "inside the data folder",
    "a link to it",
    "a link in the data folder",
    "the data folder's parent",
]


class BrokenEmbeddings(HashEmbeddings):
    """Embeddings that fail, as a model that runs out of memory would."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise RuntimeError("out of memory")


def _services(settings, embeddings=None) -> Services:
    embeddings = embeddings or HashEmbeddings()
    return build_services(settings, embedding_builder=lambda spec, batch, folder: embeddings)


@pytest.fixture(params=PLACES)
def user_folder(request, tmp_path, settings) -> tuple[Path, Path]:
    """(the folder the user gives the app, the real folder whose files must survive)."""
    settings.ensure_dirs()
    data = settings.data_dir
    real = {
        "outside the data folder": tmp_path / "my-notes",
        "inside the data folder": data / "my-notes",
        "a link to it": tmp_path / "real-notes",
        "a link in the data folder": tmp_path / "real-notes",
        "the data folder's parent": tmp_path,
    }[request.param]
    (real / "sub").mkdir(parents=True, exist_ok=True)
    (real / "note.md").write_text("# Notes\n\nAWQ quantization keeps weights in 4 bits.\n", encoding="utf-8")
    (real / "sub" / "deep.md").write_text("# 深处\n\n量化笔记。\n", encoding="utf-8")
    (real / "photo.jpg").write_bytes(b"\xff\xd8\xff\x00" * 10)
    given = real
    if request.param == "a link to it":
        given = tmp_path / "notes-link"
        given.symlink_to(real, target_is_directory=True)
    elif request.param == "a link in the data folder":
        given = data / "notes-link"
        given.symlink_to(real, target_is_directory=True)
    return given, real


def _snapshot(real: Path, data: Path) -> dict[str, bytes]:
    """Every file of the user's folder with its bytes (the app's data folder left out when it lies inside)."""
    root, data = real.resolve(), data.resolve()
    skip = data if data != root and data.is_relative_to(root) else None
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not (skip and p.is_relative_to(skip))
    }


def _uploaded(services: Services, name: str) -> tuple[object, Path]:
    """A knowledge base ``name`` with one uploaded file, and the app's copy of the upload."""
    kb = services.knowledge.create(name, "multilingual-e5-small-q4", SplitterSettings(200, 20))
    upload = UploadInput((("a.md", b"# A\n\ntext\n"),))
    assert services.jobs.wait(services.start_ingest(kb, upload).id, timeout=60).status == "done"
    return kb, services.knowledge.source_folder(services.knowledge.sources(kb)[0])


def _ingested(services: Services, folder: Path):
    kb = services.knowledge.create("notes", "multilingual-e5-small-q4", SplitterSettings(200, 20))
    job = services.jobs.wait(services.start_ingest(kb, FolderInput(folder)).id, timeout=60)
    assert job.status == "done", job.error
    assert job.result["files_ingested"] >= 2
    return kb


def test_deleting_a_knowledge_base_keeps_the_users_folder_and_removes_the_apps_copies(settings, user_folder):
    given, real = user_folder
    services = _services(settings)
    before = _snapshot(real, settings.data_dir)
    kb = _ingested(services, given)
    upload = UploadInput((("extra.md", b"# Extra\n\nUploaded text.\n"),))
    assert services.jobs.wait(services.start_ingest(kb, upload).id, timeout=60).status == "done"
    copy = services.knowledge.source_folder(services.knowledge.sources(kb)[1])
    assert (copy / "extra.md").is_file()

    assert services.knowledge.delete(kb) == []

    assert _snapshot(real, settings.data_dir) == before
    assert not copy.exists()  # the app's own copy of the upload is gone
    assert services.knowledge.all() == []


def test_removing_a_folder_source_keeps_the_folder(settings, user_folder):
    given, real = user_folder
    services = _services(settings)
    before = _snapshot(real, settings.data_dir)
    kb = _ingested(services, given)
    assert services.knowledge.remove_source(kb, services.knowledge.sources(kb)[0]) > 0
    assert _snapshot(real, settings.data_dir) == before
    assert services.knowledge.is_empty(kb)


def test_removing_a_files_chunks_keeps_the_file(settings, user_folder):
    given, real = user_folder
    services = _services(settings)
    before = _snapshot(real, settings.data_dir)
    kb = _ingested(services, given)
    source = services.knowledge.sources(kb)[0]
    assert services.knowledge.remove_file(kb, source, "note.md") > 0
    assert _snapshot(real, settings.data_dir) == before


def test_rebuilding_a_store_keeps_the_folder(settings, user_folder):
    given, real = user_folder
    services = _services(settings)
    before = _snapshot(real, settings.data_dir)
    kb = _ingested(services, given)
    job = services.jobs.wait(services.start_rebuild(kb).id, timeout=60)
    assert job.status == "done", job.error
    assert _snapshot(real, settings.data_dir) == before
    assert services.knowledge.verify(kb)["missing"] == 0


def test_a_failed_first_ingestion_removes_the_new_base_but_not_the_folder(settings, user_folder):
    given, real = user_folder
    services = _services(settings, BrokenEmbeddings())
    before = _snapshot(real, settings.data_dir)
    kb = services.knowledge.create("notes", "multilingual-e5-small-q4", SplitterSettings(200, 20))
    job = services.jobs.wait(services.start_ingest(kb, FolderInput(given), new_kb=True).id, timeout=60)
    assert job.status == "failed" and "out of memory" in job.error["en"]
    assert job.detail["discarded"] == "notes"
    assert services.knowledge.all() == []
    assert _snapshot(real, settings.data_dir) == before


def test_a_failed_ingestion_into_an_existing_base_keeps_the_base(settings, tmp_path):
    services = _services(settings, BrokenEmbeddings())
    kb = services.knowledge.create("notes", "multilingual-e5-small-q4", SplitterSettings(200, 20))
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "a.md").write_text("text\n")
    job = services.jobs.wait(services.start_ingest(kb, FolderInput(tmp_path / "n")).id, timeout=60)
    assert job.status == "failed" and "discarded" not in job.detail
    assert [k.name for k in services.knowledge.all()] == ["notes"]


def test_deleting_a_model_keeps_a_folder_the_user_pointed_at(settings, user_folder):
    given, real = user_folder
    services = _services(settings)
    (real / "config.json").write_text('{"model_type": "qwen2"}')
    before = _snapshot(real, settings.data_dir)
    services.catalog.use_folder("qwen2.5-0.5b-instruct", given)
    services.delete_model_files("qwen2.5-0.5b-instruct")
    assert _snapshot(real, settings.data_dir) == before


def test_deleting_a_model_whose_folder_was_replaced_by_a_link_is_refused(settings, user_folder):
    _, real = user_folder
    services = _services(settings)
    before = _snapshot(real, settings.data_dir)
    folder = settings.models_dir / "qwen2.5-0.5b-instruct"
    services.files.make_dir(folder).rmdir()
    folder.symlink_to(real, target_is_directory=True)
    with pytest.raises(NotAppCreated):
        services.delete_model_files("qwen2.5-0.5b-instruct")
    assert _snapshot(real, settings.data_dir) == before


def test_deleting_a_conversation_or_a_run_removes_its_file_and_never_follows_a_link(settings, user_folder):
    _, real = user_folder
    services = _services(settings)
    before = _snapshot(real, settings.data_dir)
    kept = services.conversations.create("mine")
    services.conversations.delete(kept.id)
    assert all(c.id != kept.id for c in services.conversations.all())

    planted = settings.data_dir / "conversations" / "abc123.json"
    planted.symlink_to(real / "note.md")
    with pytest.raises(NotAppCreated):
        services.conversations.delete("abc123")
    run = settings.data_dir / "evaluations" / "runs" / "def456.json"
    run.symlink_to(real / "note.md")
    with pytest.raises(NotAppCreated):
        services.evaluations.delete_run("def456")
    assert _snapshot(real, settings.data_dir) == before


def test_folders_made_before_the_ledger_can_still_be_deleted(settings, tmp_path):
    services = _services(settings)
    _, copy = _uploaded(services, "old")
    (settings.data_dir / "created.sqlite3").unlink()  # as a data folder from an earlier version

    again = _services(settings)
    assert again.files.new and again.files.is_owned(copy)
    assert again.knowledge.delete(again.knowledge.get("old")) == []
    assert not copy.exists()


def test_a_copy_that_is_not_the_apps_is_left_in_place_and_reported(settings, tmp_path):
    services = _services(settings)
    kb, copy = _uploaded(services, "odd")
    mine = tmp_path / "mine"
    copy.rename(mine)
    copy.symlink_to(mine, target_is_directory=True)  # someone swapped the copy for a link
    kept = services.knowledge.delete(kb)
    assert [type(r) for r in kept] == [NotAppCreated] and str(copy) in str(kept[0])
    assert (mine / "a.md").read_bytes() == b"# A\n\ntext\n"
    assert services.knowledge.all() == []
    assert json.loads(json.dumps([r.message("zh") for r in kept]))  # shown in either language
