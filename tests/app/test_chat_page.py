from core import chat
from tests.app.conftest import shown, wait_for_jobs
from ui.common import services


def _ingested_app(app, folder):
    app.switch_page("pages/knowledge.py").run()
    app.text_input(key="kb.new_name").input("docs").run()
    app.button(key="kb.create").click().run()
    app.text_input(key="kb.folder").input(str(folder)).run()
    app.button(key="kb.ingest.folder").click().run()
    wait_for_jobs()
    app.switch_page("pages/chat.py").run()
    app.multiselect(key="chat.kbs").select("docs").run()
    return app


def _picker(app):
    """The conversation picker (its key changes with the titles)."""
    return next(box for box in app.selectbox if box.key and box.key.startswith("chat.pick."))


def _ask(app, question):
    app.chat_input(key="chat.input").set_value(question).run()
    return app


def test_answer_streams_with_its_sources_and_citations(app, docs_folder):
    _ask(_ingested_app(app, docs_folder), "LMDeploy 支持哪些量化？")
    assert not app.exception
    _, assistant = app.chat_message
    assert "canned answer" in assistant.markdown[0].value
    assert "](#src-" in assistant.markdown[0].value  # the [1] citation links to its source
    sources = assistant.expander[0]
    assert sources.label == "Sources (1)"  # the pasta page is below the calibrated floor
    first = shown(sources.markdown[0].value)
    assert "[1] docs / quant.md:1-3" in first and "relevance" in first and "cited" in first
    assert "AWQ" in shown(sources.markdown[1].value)


def test_conversation_is_saved_and_reloaded_in_a_new_session(app, app_env, docs_folder):
    _ask(_ingested_app(app, docs_folder), "hello")
    _ask(app, "and again")
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import ENTRY

    fresh = AppTest.from_file(str(ENTRY), default_timeout=60)
    fresh.session_state["lang"] = "en"
    fresh.run()
    fresh.switch_page("pages/chat.py").run()
    assert [m.name for m in fresh.chat_message] == ["user", "assistant", "user", "assistant"]
    assert _picker(fresh).options == ["hello"]


def test_new_rename_export_and_delete_conversations(app, docs_folder):
    _ask(_ingested_app(app, docs_folder), "first question")
    app.button(key="chat.new").click().run()
    assert len(app.chat_message) == 0
    _ask(app, "second question")
    app.text_input(key="chat.rename_title").input("Renamed").run()
    app.button(key="chat.rename").click().run()
    assert sorted(_picker(app).options) == ["Renamed", "first question"]
    exported = app.get("download_button")[0]
    assert exported.proto.label == "Export as Markdown"
    app.button(key="chat.delete_yes").click().run()
    assert _picker(app).options == ["first question"]


def test_nothing_relevant_offers_to_answer_without_the_knowledge_base(app, docs_folder):
    _ingested_app(app, docs_folder)
    app.session_state["chat.threshold_auto"] = False
    app.session_state["chat.threshold"] = 1.0
    app.run()
    _ask(app, "What is the weather on Mars?")
    assistant = app.chat_message[1]
    assert "Nothing in the selected knowledge bases is relevant enough" in assistant.markdown[0].value
    app.button(key=next(b.key for b in app.button if b.key and b.key.startswith("chat.answer_anyway"))).click().run()
    # The refusal is replaced by the answer: the question is asked once, never twice in a row.
    assert [m.name for m in app.chat_message] == ["user", "assistant"]
    assert "canned answer" in app.chat_message[1].markdown[0].value
    assert not app.chat_message[1].expander  # answered without the knowledge base: no sources


def test_sources_only_mode_shows_sources_without_an_answer(app, docs_folder):
    _ingested_app(app, docs_folder)
    app.radio(key="chat.answer_mode.model").set_value("sources").run()
    _ask(app, "pasta")
    assistant = app.chat_message[1]
    assert assistant.caption[0].value == "Sources only: no answer was generated."
    assert assistant.expander[0].label.startswith("Sources")


def test_feedback_is_stored_with_the_answer(app, docs_folder):
    _ask(_ingested_app(app, docs_folder), "pasta")
    conversation_id = app.session_state["chat.conversation"]
    app.session_state[f"chat.feedback.{conversation_id}.1"] = 0  # thumbs down
    app.run()
    assert services().conversations.get(conversation_id).messages[1].feedback == -1


def test_a_stopped_answer_stays_on_screen_and_in_the_list(app, docs_folder):
    _ingested_app(app, docs_folder)
    store = services().conversations
    conversation = store.get(app.session_state["chat.conversation"])
    # What a Stop leaves: a question answered in part, and one stopped before its answer began.
    turn = chat.ask(store, conversation, "What is AWQ?")
    turn.reply.kind, turn.reply.content, turn.reply.stopped = "generated", "AWQ keeps weights", True
    store.save(conversation)
    chat.ask(store, conversation, "And int8?")
    app.run()
    assert [m.name for m in app.chat_message] == ["user", "assistant", "user", "assistant"]
    assert app.chat_message[1].markdown[0].value.startswith("AWQ keeps weights")
    assert "(stopped)" in app.chat_message[1].markdown[0].value
    assert "stopped before it began" in app.chat_message[3].caption[0].value
    assert _picker(app).options == ["What is AWQ?"]


def test_the_demo_model_offers_a_quick_answer_and_writes_one_on_request(app, docs_folder):
    services().models.load("smollm2-135m-instruct")
    _ingested_app(app, docs_folder)
    notice = shown(app.info[0].value)
    assert "demo model SmolLM2-135M-Instruct" in notice and "Qwen2.5-Coder-1.5B on a CPU" in notice
    _ask(app, "LMDeploy 支持哪些量化？")
    assistant = app.chat_message[1]
    assert assistant.caption[0].value.startswith("Quick answer: sentences quoted from your sources")
    quoted = assistant.markdown[0].value
    assert quoted.startswith("> ") and "AWQ 4bit" in quoted and "](#src-" in quoted
    assert "quoted" in shown(assistant.expander[0].markdown[0].value)
    write = next(b for b in app.button if b.key and b.key.startswith("chat.generate."))
    assert write.label == "Write an answer with the demo model SmolLM2-135M-Instruct (embedded)"
    write.click().run()
    assistant = app.chat_message[1]
    assert [m.name for m in app.chat_message] == ["user", "assistant"]
    assert "canned answer" in assistant.markdown[0].value
    assert "demo model" in assistant.caption[0].value and "check every sentence" in assistant.caption[0].value


def test_document_html_and_scripts_are_shown_as_text(app, tmp_path):
    folder = tmp_path / "web"
    folder.mkdir()
    (folder / "page.md").write_text("# Page\n\nSafe words <script>alert('x')</script> <img src=x onerror=alert(1)>\n")
    _ask(_ingested_app(app, folder), "safe words page")
    sources = app.chat_message[1].expander[0]
    snippet = sources.markdown[1].value
    assert "\\<script\\>" in snippet and "<script>" not in snippet  # escaped, so Markdown shows it as text
    assert all("<script>" not in h.proto.body for h in app.get("html"))  # raw HTML only for our anchors


def test_why_a_follow_up_was_not_rewritten_is_shown(app, docs_folder):
    services().models.load("smollm2-135m-instruct")  # its row says it cannot rewrite
    _ingested_app(app, docs_folder)
    app.radio(key="chat.answer_mode.demo").set_value("generate").run()
    _ask(app, "LMDeploy 支持哪些量化？")
    _ask(app, "它需要多少显存？")
    notes = [shown(c.value) for c in app.chat_message[3].caption]
    assert any(
        "Searched with the question as asked: the rewrite was skipped (this model cannot rewrite)" in n for n in notes
    )


def _fresh_session():
    from streamlit.testing.v1 import AppTest

    from tests.app.conftest import ENTRY

    fresh = AppTest.from_file(str(ENTRY), default_timeout=60)
    fresh.session_state["lang"] = "en"
    return fresh.run()


def test_a_knowledge_base_is_searched_from_the_start(app, docs_folder):
    app.switch_page("pages/chat.py").run()  # visited before any knowledge base exists
    assert app.multiselect(key="chat.kbs").value == []
    _ingested_app(app, docs_folder)
    assert app.multiselect(key="chat.kbs").value == ["docs"]  # preselected, not the model alone
    app.multiselect(key="chat.kbs").unselect("docs").run()
    app.switch_page("pages/knowledge.py").run()
    app.switch_page("pages/chat.py").run()
    assert app.multiselect(key="chat.kbs").value == []  # the user's own empty choice is kept


def test_the_knowledge_base_answers_last_came_from_is_preselected(app, docs_folder, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "serving.md").write_text("# Serving\n\nThe server listens on port 23333.\n")
    _ingested_app(app, docs_folder)
    app.switch_page("pages/knowledge.py").run()
    app.text_input(key="kb.new_name").input("serving notes").run()
    app.button(key="kb.create").click().run()
    app.text_input(key="kb.folder").input(str(other)).run()
    app.button(key="kb.ingest.folder").click().run()
    wait_for_jobs()
    app.switch_page("pages/chat.py").run()
    app.multiselect(key="chat.kbs").unselect("docs").select("serving notes").run()
    _ask(app, "Which port does the server listen on?")
    fresh = _fresh_session().switch_page("pages/chat.py").run()
    assert fresh.multiselect(key="chat.kbs").value == ["serving notes"]  # not the first one, "docs"


def test_without_a_model_questions_get_quick_answers_from_the_knowledge_base(app, docs_folder, monkeypatch):
    from core.errors import NoModelLoaded
    from core.models.manager import ModelManager

    def no_model(self, **generation):
        raise NoModelLoaded()

    monkeypatch.setattr(ModelManager, "chat_model", no_model)
    _ingested_app(app, docs_folder)
    assert "No model is loaded: answers are quoted from your knowledge bases" in app.info[0].value
    assert not app.chat_input(key="chat.input").proto.disabled
    _ask(app, "LMDeploy 支持哪些量化？")
    assert not app.exception
    assistant = app.chat_message[1]
    assert assistant.caption[0].value.startswith("Quick answer: sentences quoted from your sources")
    assert "AWQ 4bit" in assistant.markdown[0].value and "](#src-" in assistant.markdown[0].value
    # With the model alone (no knowledge base) there is nothing to quote: the input waits for a model.
    app.multiselect(key="chat.kbs").unselect("docs").run()
    assert app.chat_input(key="chat.input").proto.disabled


def test_a_question_waiting_for_other_pages_answers_says_so(app, docs_folder, monkeypatch):
    import types

    import streamlit

    services().models.load("qwen2-7b-instruct")  # the fake backend: nothing is read from disk
    engine = types.SimpleNamespace(in_flight=2, fast=True, why="fast", detail="", close=lambda: None)
    services().models.current.engine = engine
    _ingested_app(app, docs_folder)
    # What the page shows while the answer is written (the rerun after it redraws the conversation).
    monkeypatch.setattr(streamlit, "rerun", lambda: None)
    _ask(app, "LMDeploy 支持哪些量化？")
    assert not app.exception
    assistant = app.chat_message[1]
    assert "canned answer" in assistant.markdown[0].value
    shown = [c.value for c in app.caption]
    assert "The model is writing 2 answer(s) for other open pages; yours starts after them." in shown
