"""The Knowledge page shows the page a PDF chunk comes from, and that page itself."""

from tests.app.conftest import shown, wait_for_jobs
from tests.pdf_documents import Page, text_pdf


def test_the_chunk_browser_shows_the_page_of_a_pdf_chunk_and_the_page_itself(app, tmp_path):
    folder = tmp_path / "pdfs"
    folder.mkdir()
    pages = [Page([f"Page {n} says: " + "the manual explains installation and serving. " * 12]) for n in (1, 2)]
    (folder / "manual.pdf").write_bytes(text_pdf(pages))
    (folder / "notes.md").write_text("# Notes\n\nNo pages here.\n")
    app.switch_page("pages/knowledge.py").run()
    app.text_input(key="kb.new_name").input("manuals").run()
    app.button(key="kb.create").click().run()
    app.text_input(key="kb.folder").input(str(folder)).run()
    app.button(key="kb.ingest.folder").click().run()
    wait_for_jobs()
    app.run()

    table = app.dataframe[-1].value
    assert list(table.columns[:4]) == ["File", "#", "Lines", "Page"]
    pdf_rows = table[table["File"] == "manual.pdf"]
    assert set(pdf_rows["Page"]) == {1, 2}
    assert table[table["File"] == "notes.md"]["Page"].isna().all()

    last = int(pdf_rows.index[-1])
    app.session_state["kb.chunk_table"] = {"selection": {"rows": [last], "columns": []}}
    app.run()
    assert not app.exception
    assert any("manual.pdf, lines" in shown(m.value) and "· p. 2" in shown(m.value) for m in app.markdown)
    (image,) = app.get("image")
    assert [shown(c) for c in image.captions] == ["manual.pdf, page 2"]  # the page, rendered
