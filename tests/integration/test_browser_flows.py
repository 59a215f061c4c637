"""Newcomer flows in a real browser (Debian's Chromium through Playwright, the app served on
loopback with the bundled models): exporting a stopped answer, reloading during an ingestion,
confirming a file's removal, Chat starting with a knowledge base, and a PDF source opened in
the browser's own viewer at its page. Each flow keeps a screenshot in test-artifacts/ for people
to look at."""

# The browser fixtures are test_browser.py's, imported by name, which pytest's arguments shadow.
# ruff: noqa: F811

from __future__ import annotations

from core.app_files import AppFiles
from core.conversations import Conversations, Message
from core.knowledge.records import Records
from core.locks import Locks
from core.settings import Settings
from tests.integration.test_browser import (  # noqa: F401 - fixtures used by name
    _shot,
    browser,
    chromium,
    page,
    running_app,
)
from tests.pdf_documents import Page, text_pdf

STOPPED_ANSWER = "Install it, then start the server:\n\n```bash\npip install lmdeploy\nlmdeploy serve api_server"


def _create_and_ingest(page, name: str, folder, preview_shot: str | None = None) -> None:
    page.get_by_role("link", name="Knowledge").click()
    page.get_by_label("Name (any language)").fill(name)
    page.get_by_role("button", name="Create").click()
    page.get_by_label("Folder path on this machine").fill(str(folder))
    page.get_by_label("Folder path on this machine").press("Enter")
    if preview_shot:
        page.get_by_role("button", name="Preview").click()
        page.get_by_text("2 files would be read").wait_for(timeout=120_000)
        chart = page.locator("[data-testid=stVegaLiteChart]").last
        chart.scroll_into_view_if_needed()
        chart.locator("canvas, svg").first.wait_for()
        page.wait_for_timeout(1000)  # the chart's drawing
        _shot(page, preview_shot)
    page.get_by_role("button", name="Ingest").click()


def _two_files(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "serving.md").write_text("# Serving\n\nRun the api_server command. The server listens on port 23333.\n")
    (docs / "pasta.md").write_text("# Pasta\n\nBoil the pasta for ten minutes, then add the sauce.\n")
    return docs


def test_a_stopped_answer_inside_a_code_block_exports_as_valid_markdown(chromium, tmp_path, page):
    from markdown_it import MarkdownIt

    from tests.integration.test_browser import _serve

    data = tmp_path / "data"
    data.mkdir()
    store = Conversations(data / "conversations", AppFiles(data))
    conversation = store.create("Serving")
    conversation.messages += [
        Message("user", "How do I serve a model?"),
        Message("assistant", STOPPED_ANSWER, stopped=True, feedback=1, question_used="How to serve a model"),
        Message("user", "Which port?"),
        Message("assistant", "Port 23333."),
    ]
    store.save(conversation)
    served = _serve(tmp_path)
    url = next(served)
    try:
        page.set_default_timeout(30_000)
        page.goto(url)
        page.get_by_role("link", name="Chat").click()
        page.get_by_text("Port 23333.").wait_for()
        # On screen as well, the unfinished code block ends before the next question.
        assert "Which port?" in page.locator("[data-testid=stChatMessage]").nth(2).inner_text()
        with page.expect_download() as download:
            page.get_by_role("button", name="Export as Markdown").click()
        exported = download.value.path().read_text(encoding="utf-8")
        _shot(page, "flow-export")
    finally:
        next(served, None)
    tokens = MarkdownIt().parse(exported)
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 1 and "Which port?" not in fences[0].content  # closed where the answer stopped
    paragraphs = [t.content for t in tokens if t.type == "inline"]
    assert "Which port?" in paragraphs and "Port 23333." in paragraphs
    assert "Searched for: How to serve a model" in paragraphs and "Feedback: 👍 helpful" in paragraphs


def test_a_running_ingestion_is_still_shown_after_a_reload(chromium, running_app, page, tmp_path):
    docs = _two_files(tmp_path)
    page.set_default_timeout(60_000)
    page.goto(running_app)
    page.get_by_role("link", name="Knowledge").click()
    page.get_by_label("Name (any language)").fill("a first base")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("heading", name="Your knowledge bases").wait_for()
    page.get_by_label("Folder path on this machine").wait_for()  # the page is drawn for the new base
    # Another process writes to the second base, so its ingestion waits (and runs) until released.
    records = Records(Settings(data_dir=tmp_path / "data").db_path)
    page.get_by_text("New knowledge base").click()  # folded away once a base exists
    page.get_by_label("Name (any language)").fill("b busy base")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("combobox", name="Knowledge base").and_(page.locator("[value='b busy base']")).wait_for()
    lock = Locks(tmp_path / "data").kb(records.kb_by_name("b busy base").id)
    lock.acquire()
    try:
        page.get_by_label("Folder path on this machine").fill(str(docs))
        page.get_by_label("Folder path on this machine").press("Enter")
        page.get_by_role("button", name="Ingest").click()
        page.get_by_text("Ingesting into “b busy base”").wait_for()
        page.reload()
        page.get_by_role("heading", name="Knowledge bases", exact=True).wait_for()
        # A new session starts on the first base, and the running job is still at the top.
        page.get_by_text("Ingesting into “b busy base”").wait_for()
        page.get_by_text("another process is writing").wait_for()
        _shot(page, "flow-reload-running")
    finally:
        lock.release()
    page.get_by_text("Ingesting into “b busy base”").wait_for(state="detached", timeout=120_000)


def test_removing_a_file_asks_in_a_dialog_that_names_it(chromium, running_app, page, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    docs = _two_files(tmp_path)
    page.set_default_timeout(60_000)
    page.goto(running_app)
    _create_and_ingest(page, "removal", docs, preview_shot="flow-preview-chart")
    page.get_by_text("2 file(s) ingested").wait_for(timeout=180_000)
    table = page.locator("[data-testid=stDataFrame]").last
    table.scroll_into_view_if_needed()
    remove = page.get_by_role("button", name="Remove the chunks of")
    for _ in range(5):  # the grid draws its rows a moment after it appears
        box = table.bounding_box()
        page.mouse.click(box["x"] + 14, box["y"] + 35 + 17)  # the first row's selection box
        try:
            remove.wait_for(timeout=3000)
            break
        except PlaywrightTimeout:
            continue
    remove.wait_for()
    target = remove.inner_text().split("Remove the chunks of ")[1].rstrip("…").strip()
    remove.dblclick()  # a double click must not remove two files
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"Remove all 1 chunks of {target}").wait_for()
    _shot(page, "flow-remove-dialog")
    dialog.get_by_role("button", name="Yes, remove them").click()
    page.get_by_text(f"Removed 1 chunks of {target}").wait_for()
    page.get_by_text("1 of 1 chunks").wait_for()


def test_chat_starts_with_a_knowledge_base_selected(chromium, running_app, page, tmp_path):
    docs = _two_files(tmp_path)
    page.set_default_timeout(60_000)
    page.goto(running_app)
    page.get_by_role("link", name="Chat").click()  # before any knowledge base exists
    page.get_by_placeholder("None: chat with the model alone").wait_for()
    _create_and_ingest(page, "browser docs", docs)
    page.get_by_text("2 file(s) ingested").wait_for(timeout=180_000)
    page.get_by_role("link", name="Chat").click()
    picker = page.locator("[data-testid=stMultiSelect]").first
    picker.get_by_text("browser docs").wait_for()  # selected, not the model alone
    assert page.get_by_placeholder("None: chat with the model alone").count() == 0
    page.get_by_text("No model is loaded: answers are quoted").wait_for()  # the page is drawn
    _shot(page, "flow-chat-preselected")
    # Without any model, a question gets a quick answer quoted from the knowledge base.
    page.get_by_placeholder("Ask a question about your documents").fill("How long should the pasta boil?")
    page.keyboard.press("Enter")
    answer = page.locator("[data-testid=stChatMessage]").nth(1)
    answer.get_by_text("Quick answer: sentences quoted from your sources").wait_for(timeout=120_000)
    assert "Boil the pasta for ten minutes" in answer.inner_text() and "[1]" in answer.inner_text()
    _shot(page, "flow-chat-no-model-quick-answer")


def test_stop_shows_the_saved_partial_answer_and_keeps_the_conversation(chromium, running_app, page, tmp_path):
    question = "Tell me a long story about a cat who learns to sail across the sea."
    page.set_default_timeout(60_000)
    page.goto(running_app)
    page.get_by_role("link", name="Models").click()
    page.get_by_role("button", name="Load", exact=True).click()
    page.get_by_text("In memory: SmolLM2-135M-Instruct").wait_for(timeout=240_000)
    page.get_by_role("link", name="Chat").click()  # no knowledge base: the model alone writes
    page.get_by_placeholder("Ask a question about your documents").fill(question)
    page.keyboard.press("Enter")
    answer = page.locator("[data-testid=stChatMessage]").nth(1)
    answer.wait_for()
    # Some words of the answer are on the page (a text block longer than the Stop button's).
    page.wait_for_function(
        "() => { const el = document.querySelectorAll('[data-testid=stChatMessage]')[1];"
        " return el && Array.from(el.querySelectorAll('[data-testid=stMarkdownContainer]'))"
        ".some(text => text.innerText.trim().length > 20); }",
        timeout=120_000,
    )
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("(stopped)").wait_for()  # the answer is marked stopped, not lost with the run
    page.locator("[data-testid=stChatMessage]").first.get_by_text(question).wait_for()
    # Streamlit starts the next run while the stopped one is still saving: the page must show
    # the words as finally saved, not an earlier (or empty) state of the answer.
    (saved,) = Conversations(tmp_path / "data" / "conversations", AppFiles(tmp_path / "data")).all()
    words = saved.messages[1].content.strip()
    assert saved.messages[1].stopped and len(words) > 20
    shown = answer.locator("[data-testid=stMarkdownContainer]").first.inner_text().split("(stopped)")[0]
    assert " ".join(shown.split()) == " ".join(words.split())
    _shot(page, "flow-stop")


def test_a_pdf_source_opens_in_the_browsers_viewer_at_its_page(chromium, running_app, page, tmp_path):
    docs = tmp_path / "manual"
    docs.mkdir()
    # Each page longer than a chunk: the answer's chunk is on page 2.
    quantization = ["LMDeploy 量化指南。LMDeploy 支持 AWQ 4bit 权重量化（W4A16），也支持 KV cache int8 量化。"] * 3
    serving = [
        "This section describes deployment details that matter for operators of the service. " * 5,
        "Serving: run the api_server command. The server listens on port 23333 by default.",
    ]
    (docs / "guide.pdf").write_bytes(text_pdf([Page(quantization), Page(serving)], header="LMDeploy guide"))
    page.set_default_timeout(60_000)
    page.goto(running_app)
    _create_and_ingest(page, "pdf docs", docs)
    page.get_by_text("1 file(s) ingested").wait_for(timeout=180_000)
    page.get_by_role("link", name="Chat").click()
    page.get_by_placeholder("Ask a question about your documents").fill("Which port does the server listen on?")
    page.keyboard.press("Enter")
    answer = page.locator("[data-testid=stChatMessage]").nth(1)
    answer.get_by_text("Quick answer: sentences quoted from your sources").wait_for(timeout=120_000)
    answer.get_by_text("Sources (").first.click()
    answer.get_by_text("See page 2").click()
    page.get_by_role("button", name="Open in the browser").click()
    link = page.get_by_text("Open guide.pdf at page 2")
    with page.expect_popup() as opened:
        link.click()
    viewer = opened.value
    assert viewer.url.startswith("blob:") and viewer.url.endswith("#page=2")
    viewer.wait_for_timeout(1500)  # the viewer's drawing
    _shot(viewer, "flow-pdf-open-at-page")
