from tests.app.conftest import wait_for_jobs


def _create(app, name):
    app.switch_page("pages/knowledge.py").run()
    app.text_input(key="kb.new_name").input(name).run()
    app.button(key="kb.create").click().run()


def test_create_ingest_and_preview_chunks(app, docs_folder):
    _create(app, "课程笔记")
    assert app.selectbox(key="kb.pick").value == "课程笔记"
    app.text_input(key="kb.folder").input(str(docs_folder)).run()
    app.button(key="kb.ingest").click().run()
    wait_for_jobs()
    app.run()

    assert not app.exception
    assert "2 file(s) ingested" in app.success[0].value
    table = app.dataframe[0].value  # skipped files
    assert list(table["File"]) == ["photo.jpg"] and list(table["Reason"]) == ["binary file"]
    chunks = app.dataframe[1].value
    assert set(chunks["File"]) == {"pasta.md", "quant.md"}
    assert "2 file(s)" in app.caption[0].value


def test_chunk_preview_filters_by_file(app, docs_folder):
    _create(app, "docs")
    app.text_input(key="kb.folder").input(str(docs_folder)).run()
    app.button(key="kb.ingest").click().run()
    wait_for_jobs()
    app.run()
    app.selectbox(key="kb.file_filter").select("quant.md").run()
    assert set(app.dataframe[-1].value["File"]) == {"quant.md"}


def test_bad_name_and_missing_folder_show_one_clear_error(app, tmp_path):
    _create(app, "a/b")
    assert len(app.error) == 1 and "cannot be used" in app.error[0].value
    _create(app, "ok")
    app.text_input(key="kb.folder").input(str(tmp_path / "missing")).run()
    app.button(key="kb.ingest").click().run()
    assert len(app.error) == 1 and "is not a folder" in app.error[0].value
    app.run()
    assert len(app.error) == 0  # shown once, not on every rerun
