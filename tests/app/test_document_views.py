"""What the pages show of scans and PDFs: the preview's OCR estimate, the ingestion's OCR
progress, and a PDF source in the chat with its page and the page itself on demand.
"""

import base64
import io
import re
import threading

from core.knowledge.ocr import PAGES_PER_SECOND
from tests.app.conftest import shown, wait_for_jobs
from tests.pdf_documents import Page, images_pdf, scanned_pdf, text_image, text_pdf
from ui.common import services
from ui.text import lookup


def _create(app, name, overlap=None):
    app.switch_page("pages/knowledge.py").run()
    app.text_input(key="kb.new_name").input(name).run()
    if overlap is not None:
        app.number_input(key="kb.new_chunk_overlap").set_value(overlap).run()
    app.button(key="kb.create").click().run()


def _blocks(node, kind):
    """Every block of type ``kind`` (a popover, say) under ``node``, in order."""
    for child in getattr(node, "children", {}).values():
        if getattr(child, "type", None) == kind:
            yield child
        yield from _blocks(child, kind)


def _png(image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_the_preview_says_how_many_pages_of_scans_and_images_need_ocr(app, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "scan.pdf").write_bytes(scanned_pdf(text_pdf([Page(["Scanned page one."]), Page(["第二页。"])])))
    (folder / "photo.png").write_bytes(_png(text_image(["A photo of a page."], width=600, size=36)))
    (folder / "book.pdf").write_bytes(text_pdf([Page(["A page with a text layer."])]))
    _create(app, "scans")
    app.text_input(key="kb.folder").input(str(folder)).run()
    app.button(key="kb.preview.folder").click().run()
    wait_for_jobs()
    app.run()
    assert not app.exception
    seconds = round(3 / PAGES_PER_SECOND, 1)
    about = lookup("time.s", "en", n=seconds) if seconds < 90 else lookup("time.min", "en", n=seconds / 60)
    expected = lookup("kb.dry.ocr", "en", pages=3, time=about)
    assert expected.startswith("3 page(s) have no text layer (scans, images) and will be read by OCR: about")
    assert [i.value for i in app.info if "no text layer" in i.value] == [expected]
    assert services().knowledge.stats(services().knowledge.get("scans")).chunks == 0  # a preview stores nothing


def test_an_ingestion_shows_the_file_and_page_ocr_is_reading(app, tmp_path, monkeypatch):
    from core.knowledge.ingest import Ingestion

    folder = tmp_path / "faxes"
    folder.mkdir()
    pages = [text_image([f"Fax page {n}", f"order {n}{n}70"], width=600, size=36) for n in (1, 2, 3)]
    (folder / "fax.pdf").write_bytes(images_pdf(pages))
    # The real reading and OCR; the job is held once the first page is read, until the page is seen.
    reached, release = threading.Event(), threading.Event()
    reading = Ingestion._reading

    def held(self, path):
        progress = reading(self, path)

        def hear(done, total):
            progress(done, total)
            if done == 1 and total and not reached.is_set():
                reached.set()
                release.wait(120)

        return hear

    monkeypatch.setattr(Ingestion, "_reading", held)
    _create(app, "faxes")
    app.text_input(key="kb.folder").input(str(folder)).run()
    app.button(key="kb.ingest.folder").click().run()
    try:
        assert reached.wait(180), "the OCR never reported its first page"
        app.run()
        assert not app.exception
        (status,) = [s for s in app.get("status") if s.label == "Ingesting into “faxes”"]
        (bar,) = status.get("progress")
        assert shown(bar.proto.text).endswith(" · OCR of fax.pdf: page 1/3")
    finally:
        release.set()
    wait_for_jobs()
    app.run()
    assert not app.exception
    kb = services().knowledge.get("faxes")
    chunks = services().knowledge.chunk_table(kb)
    (text,) = chunks["text"]  # the three short pages make one chunk
    assert all(f"{n}{n}70" in text for n in (1, 2, 3)) and list(chunks["page"]) == [1]
    assert not any("OCR of" in shown(p.proto.text) for p in app.get("progress"))  # the line goes with the job


def test_a_pdf_source_in_the_chat_shows_its_page_and_the_page_itself(app, tmp_path, monkeypatch):
    from core.errors import NoModelLoaded
    from core.models.manager import ModelManager

    def no_model(self, **generation):
        raise NoModelLoaded()

    monkeypatch.setattr(ModelManager, "chat_model", no_model)  # a quick answer, quoted: no model runs
    folder = tmp_path / "manual"
    folder.mkdir()
    # Each page about a chunk long (500 characters by default): the chunk holding page 2 begins
    # with page 1's last sentence (the default overlap), and is still on page 2.
    cooking = [
        "Boil the pasta in salted water for ten minutes, stirring now and then so it does not stick.",
        "Warm the tomato sauce in a pan with olive oil, garlic and a pinch of salt while the pasta cooks.",
        "Drain the pasta, keep a cup of its water, and toss the pasta with the sauce over a low flame.",
        "Serve it warm with grated cheese and fresh basil; leftovers keep for two days in the fridge.",
        "For a larger dinner, cook the pasta in two pots rather than crowding one pot with too much of it.",
    ]
    serving = [
        "The inference server listens on port 23333 by default and answers OpenAI-style chat requests.",
        "Start the server with one command; it loads the model once and keeps it in GPU memory.",
        "To listen on another port, pass the port option when the server starts, for example 8080.",
        "Clients send their requests to the server's port over HTTP and get the answers back as JSON.",
        "A firewall must let the port through when clients on other machines talk to the server.",
    ]
    (folder / "manual.pdf").write_bytes(text_pdf([Page(cooking), Page(serving)]))
    _create(app, "docs")
    app.text_input(key="kb.folder").input(str(folder)).run()
    app.button(key="kb.ingest.folder").click().run()
    wait_for_jobs()
    app.switch_page("pages/chat.py").run()
    app.chat_input(key="chat.input").set_value("Which port does the inference server listen on?").run()
    assert not app.exception

    assistant = app.chat_message[1]
    assert assistant.caption[0].value.startswith("Quick answer")
    assert "23333" in assistant.markdown[0].value
    sources = assistant.expander[0]
    labels = [shown(m.value) for m in sources.markdown if "docs / manual.pdf" in shown(m.value)]
    assert labels and labels[0].startswith("**[1] docs / manual.pdf, p. 2**")
    # Every PDF source is labelled with its page (not its lines) and offers a view of that page.
    numbers = [int(re.match(r"\*\*\[\d+\] docs / manual\.pdf, p\. (\d+)\*\*", label).group(1)) for label in labels]
    offered = [p for p in _blocks(sources, "popover") if p.proto.popover.label.startswith("See page")]
    assert [p.proto.popover.label for p in offered] == [f"See page {n}" for n in numbers]
    (image,) = offered[0].get("image")
    assert [shown(c) for c in image.captions] == ["manual.pdf, page 2"]  # the page, rendered
    (download,) = offered[0].get("download_button")
    assert shown(download.label) == "Download manual.pdf"  # the label is Markdown: the name escaped

    # Opening the file in the browser's viewer at that page: the file is sent to the browser only
    # in the run after the click (as a blob it links to with #page=2), not at every rerun.
    def links():
        return [h for h in app.get("html") if "kba-open" in h.value]

    assert not links()
    (opener,) = [b for b in offered[0].get("button") if shown(b.label) == "Open in the browser"]
    opener.click().run()
    (link,) = links()
    assert "Open manual.pdf at page 2" in link.value and '+ "#page=2"' in link.value
    sent = re.search(r'atob\("([A-Za-z0-9+/=]+)"\)', link.value).group(1)
    assert base64.b64decode(sent) == (folder / "manual.pdf").read_bytes()
    app.run()
    assert not links()
