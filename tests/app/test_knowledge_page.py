import io
import zipfile

from tests.app.conftest import shown, wait_for_jobs
from tests.git_server import GitServer, Upstream


def _page(app):
    return app.switch_page("pages/knowledge.py").run()


def _create(app, name, embedding=None):
    _page(app)
    app.text_input(key="kb.new_name").input(name).run()
    if embedding:
        app.selectbox(key="kb.new_embedding").select(embedding).run()
    app.button(key="kb.create").click().run()


def _ingest_folder(app, folder, action="ingest"):
    app.text_input(key="kb.folder").input(str(folder)).run()
    app.button(key=f"kb.{action}.folder").click().run()
    wait_for_jobs()
    return app.run()


def test_create_ingest_and_browse_chunks(app, docs_folder):
    _create(app, "课程笔记")
    assert app.selectbox(key="kb.pick").value == "课程笔记"
    _ingest_folder(app, docs_folder)

    assert not app.exception
    assert "2 file(s) ingested" in shown(app.success[0].value)
    skipped = app.dataframe[1].value
    assert list(skipped["File"]) == ["photo.jpg"] and list(skipped["Reason"]) == ["binary file"]
    listing = app.dataframe[0].value
    assert list(listing["Name"]) == ["课程笔记"] and list(listing["Files"]) == [2]
    chunks = app.dataframe[-1].value
    assert set(chunks["File"]) == {"pasta.md", "quant.md"}
    assert set(chunks["Section"]) == {"Pasta", "量化"}


def test_search_filter_and_read_a_chunk_with_its_neighbours(app, tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "guide.md").write_text("# Guide\n\n" + "\n\n".join(f"Paragraph {i} " + "word " * 90 for i in range(6)))
    (folder / "other.md").write_text("# Other\n\nSomething unrelated about GPUs.\n")
    _create(app, "docs")
    _ingest_folder(app, folder)
    app.text_input(key="kb.search").input("gpus").run()
    assert set(app.dataframe[-1].value["File"]) == {"other.md"}
    app.text_input(key="kb.search").input("").run()
    app.selectbox(key="kb.file_filter").select("guide.md").run()
    assert set(app.dataframe[-1].value["File"]) == {"guide.md"}
    app.number_input(key="kb.chunk_row").set_value(1).run()
    labels = [e.label for e in app.expander]
    assert "Chunk before" in labels and "Chunk after" in labels


def test_preview_reports_before_anything_is_embedded(app, docs_folder):
    _create(app, "preview me")
    _ingest_folder(app, docs_folder, action="preview")
    assert not app.exception
    assert "2 files would be read into 2 chunks; 1 skipped." in [m.value for m in app.markdown]
    assert "Chinese" in app.info[0].value  # the multilingual model suits this Chinese text
    assert app.info[-1].value == "No chunks yet. Add a source above."


def test_english_source_in_a_multilingual_base_suggests_the_faster_model(app, tmp_path):
    folder = tmp_path / "en"
    folder.mkdir()
    (folder / "a.md").write_text("# Serving\n\nStart the server with one command and send requests to it.\n")
    _create(app, "english")
    _ingest_folder(app, folder, action="preview")
    assert "English model" in app.warning[0].value
    assert "all-minilm-l6-v2" in app.caption[-1].value or any("all-minilm" in c.value for c in app.caption)


def test_upload_files_and_a_zip_with_an_unsafe_entry(app):
    _create(app, "uploads")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inner/notes.md", "# Notes\n\nZipped notes about quantization.\n")
        zf.writestr("../evil.md", "# Evil\n")
    uploader = app.get("file_uploader")[0]
    uploader.upload("plain.txt", b"An uploaded text about serving models.\n", "text/plain")
    uploader.upload("bundle.zip", archive.getvalue(), "application/zip").run()
    app.button(key="kb.ingest.upload").click().run()
    wait_for_jobs()
    app.run()
    assert "2 file(s) ingested" in shown(app.success[0].value)
    assert set(app.dataframe[-1].value["File"]) == {"plain.txt", "bundle/inner/notes.md"}
    skipped = app.dataframe[1].value
    assert list(skipped["Reason"]) == ["archive entry pointing outside the folder"]


def test_refresh_after_changes_and_remove_a_source(app, docs_folder):
    _create(app, "docs")
    _ingest_folder(app, docs_folder)
    (docs_folder / "pasta.md").unlink()
    (docs_folder / "new.md").write_text("# New\n\nA new page.\n")
    source_buttons = [b for b in app.button if b.key and b.key.startswith("kb.refresh.")]
    source_buttons[0].click().run()
    wait_for_jobs()
    app.run()
    assert "1 file(s) ingested, 1 unchanged, 1 removed" in shown(app.success[0].value)
    assert set(app.dataframe[-1].value["File"]) == {"quant.md", "new.md"}
    next(b for b in app.button if b.key and b.key.startswith("kb.remove_source.")).click().run()
    assert app.info[-1].value == "No chunks yet. Add a source above."


def test_rename_and_delete_a_knowledge_base(app, docs_folder):
    _create(app, "old name")
    app.text_input(key="kb.rename_name").input("新名字").run()
    app.button(key="kb.rename").click().run()
    assert app.selectbox(key="kb.pick").value == "新名字"
    app.button(key="kb.delete_yes").click().run()
    assert app.info[0].value == "No knowledge base yet: create one below."


def test_bad_name_and_missing_folder_show_one_clear_error(app, tmp_path):
    _create(app, "a/b")
    assert len(app.error) == 1 and "cannot be used" in app.error[0].value
    _create(app, "ok")
    app.text_input(key="kb.folder").input(str(tmp_path / "missing")).run()
    app.button(key="kb.ingest.folder").click().run()
    assert len(app.error) == 1 and "is not a folder" in app.error[0].value
    app.run()
    assert len(app.error) == 0  # shown once, not on every rerun


def test_a_failed_first_ingestion_says_the_base_is_empty_and_how_to_delete_it(app):
    _create(app, "repo")
    app.text_input(key="kb.git_url").input("http://127.0.0.1:9/nothing.git").run()
    app.button(key="kb.ingest.git").click().run()
    wait_for_jobs()
    app.run()
    assert "127.0.0.1" in app.error[0].value
    notice = next(i.value for i in app.info if "holds nothing yet" in i.value)
    assert "“repo”" in notice and "Delete knowledge base" in notice


def test_a_token_typed_into_a_git_address_is_used_once_and_never_shown(app, tmp_path):
    token = "ghp_PageT0ken"
    (tmp_path / "served").mkdir()
    with GitServer(tmp_path / "served", auth=("me", token)) as server:
        project = Upstream(tmp_path, server)
        project.commit({"README.md": "# Private\n\nNotes about AWQ quantization.\n"})
        _create(app, "private")
        app.text_input(key="kb.git_url").input(project.url.replace("http://", f"http://me:{token}@")).run()
        app.button(key="kb.ingest.git").click().run()
        wait_for_jobs()
        app.run()
        assert "1 file(s) ingested" in shown(app.success[0].value)
        # The field keeps the address, without the token, once the ingestion has started.
        assert app.text_input(key="kb.git_url").value == project.url
        assert any(project.url in shown(m.value) for m in app.markdown)
        assert token not in _page_text(app)

        # A refresh needs the token again, and says how to give it, without showing it.
        next(b for b in app.button if b.key and b.key.startswith("kb.refresh.")).click().run()
        wait_for_jobs()
        app.run()
    assert "KBA_GIT_TOKENS" in app.error[0].value
    assert token not in _page_text(app)


def _page_text(app) -> str:
    """Everything the page shows: each element as sent to the browser, and each widget's value."""
    nodes = [*app.main, *app.sidebar]
    return "\n".join([str(getattr(node, "proto", "")) for node in nodes] + [_value(node) for node in nodes])


def _value(node) -> str:
    try:
        return str(node.value)
    except Exception:  # noqa: BLE001 - containers and some elements have no value
        return ""
