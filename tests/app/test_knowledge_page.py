import io
import json
import zipfile

from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

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


def _outcome(app):
    """The last job's outcome as shown: green the first time the session sees it (which can be
    the rerun that noticed the job end, before the test looks), a caption after that.
    """
    return " ".join(shown(e.value) for e in [*app.success, *app.caption] if "ingested" in e.value)


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
    assert "2 file(s) ingested" in _outcome(app)
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
    assert "Select a row in the table" in app.caption[-1].value  # nothing is read until a row is picked
    _select_row(app, 1)
    labels = [e.label for e in app.expander]
    assert "Chunk before" in labels and "Chunk after" in labels


def _select_row(app, row):
    """Select a row of the chunk table, as a click on it does."""
    app.session_state["kb.chunk_table"] = {"selection": {"rows": [row], "columns": []}}
    app.run()


def test_search_hits_are_marked_in_the_chunk_read(app, docs_folder):
    _create(app, "marks")
    _ingest_folder(app, docs_folder)
    app.text_input(key="kb.search").input("Tomato").run()
    assert list(app.dataframe[-1].value["File"]) == ["pasta.md"]
    _select_row(app, 0)
    reader = app.get("html")[-1].proto.body
    assert "<mark>tomato</mark>" in reader and "Boil the pasta" in reader


def test_removing_a_file_s_chunks_asks_first_naming_the_file(app, docs_folder):
    _create(app, "removal")
    _ingest_folder(app, docs_folder)
    _select_row(app, 0)
    target = app.dataframe[-1].value["File"][0]
    app.button(key="kb.remove_file").click().run()
    assert set(app.dataframe[-1].value["File"]) == {"pasta.md", "quant.md"}  # nothing removed by the first click
    question = next(m.value for m in app.markdown if "Remove all" in m.value)
    assert shown(target) in shown(question)
    app.button(key="kb.remove_file_no").click().run()
    assert set(app.dataframe[-1].value["File"]) == {"pasta.md", "quant.md"}
    app.button(key="kb.remove_file").click().run()
    app.button(key="kb.remove_file_yes").click().run()
    assert set(app.dataframe[-1].value["File"]) == {"pasta.md", "quant.md"} - {target}
    assert not any(b.key == "kb.remove_file_yes" for b in app.button)  # the dialog is closed


def test_preview_reports_before_anything_is_embedded(app, docs_folder):
    _create(app, "preview me")
    _ingest_folder(app, docs_folder, action="preview")
    assert not app.exception
    assert "2 files would be read into 2 chunks; 1 skipped." in [m.value for m in app.markdown]
    assert "Chinese" in app.info[0].value  # the multilingual model suits this Chinese text
    assert app.info[-1].value == "No chunks yet. Add a source above."
    chart = app.get("vega_lite_chart")[-1].proto
    bars, rule = json.loads(chart.spec)["layer"][:2]
    # A numeric, binned axis (not bins sorted as text), and a rule at the model's limit.
    assert bars["encoding"]["x"]["type"] == "quantitative" and bars["encoding"]["x"]["bin"]
    assert rule["mark"]["type"] == "rule" and rule["encoding"]["x"] == {"field": "limit", "type": "quantitative"}
    data = {d.name: convert_arrow_bytes_to_pandas_df(d.data.data) for d in chart.datasets}
    assert list(data[rule["data"]["name"]]["limit"]) == [512]


def test_on_a_machine_with_a_gpu_the_preview_suggests_the_stronger_model(app, docs_folder, monkeypatch):
    monkeypatch.setattr("core.models.memory.cuda_available", lambda: True)
    _create(app, "gpu preview")
    _ingest_folder(app, docs_folder, action="preview")
    assert "Qwen3-Embedding-0.6B" in app.warning[0].value
    assert any("qwen3-embedding-0.6b would work better" in c.value for c in app.caption)


def test_previewing_a_repository_adds_no_source_and_a_failure_keeps_what_was_typed(app, tmp_path):
    (tmp_path / "served").mkdir()
    with GitServer(tmp_path / "served") as server:
        project = Upstream(tmp_path, server)
        project.commit({"README.md": "# Notes\n\nNotes about AWQ quantization.\n"})
        _create(app, "repo preview")
        app.text_input(key="kb.git_url").input(project.url).run()
        app.button(key="kb.preview.git").click().run()
        wait_for_jobs()
        app.run()
    assert any(m.value.startswith("1 files would be read into 1 chunks") for m in app.markdown)
    assert "No source yet: add one below." in [c.value for c in app.caption]  # the preview added none
    missing = "http://127.0.0.1:9/nothing.git"
    app.text_input(key="kb.git_url").input(missing).run()
    app.button(key="kb.preview.git").click().run()
    wait_for_jobs()
    app.run()
    assert len(app.error) == 1 and app.error[0].value.startswith("The preview failed:")
    assert not any("holds nothing yet" in i.value for i in app.info)  # a preview empties nothing
    assert app.text_input(key="kb.git_url").value == missing
    assert app.session_state["kb.add_open"] is True  # "Add a source" stays open


def test_a_running_ingestion_shows_at_the_top_after_a_reload(app, app_env):
    import threading

    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import ENTRY
    from ui.common import services

    _create(app, "a first")
    _create(app, "b busy")
    kb = services().knowledge.get("b busy")
    release = threading.Event()

    def work(ctx):
        ctx.progress(done=1, total=4, message="ingest", files_done=1, files_total=3, chunks_embedded=7)
        release.wait(30)

    job = services().jobs.submit("ingest", f"kb:{kb.id}", kb.name, work)
    try:
        reloaded = AppTest.from_file(str(ENTRY), default_timeout=60)
        reloaded.session_state["lang"] = "en"
        reloaded.run()
        _page(reloaded)
        assert reloaded.selectbox(key="kb.pick").value == "a first"  # a new session picks the first base
        status = reloaded.main.children[1].children[0]  # right under the title
        assert status.label == "Ingesting into “b busy”"
        assert "1/3 files · 7 chunks embedded" in status.children[0].proto.text
    finally:
        release.set()
        services().jobs.wait(job.id, 30)


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
    assert "2 file(s) ingested" in _outcome(app)
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
    assert "1 file(s) ingested, 1 unchanged, 1 removed" in _outcome(app)
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


def test_the_name_field_is_empty_again_after_a_create(app):
    assert app.switch_page("pages/knowledge.py").run().info[0].value == "No knowledge base yet: create one below."
    _create(app, "first base")
    assert app.text_input(key="kb.new_name").value == ""


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
        assert "1 file(s) ingested" in _outcome(app)
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
