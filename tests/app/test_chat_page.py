from tests.app.conftest import wait_for_jobs


def _ingested_app(app, folder):
    app.switch_page("pages/knowledge.py").run()
    app.text_input(key="kb.new_name").input("docs").run()
    app.button(key="kb.create").click().run()
    app.text_input(key="kb.folder").input(str(folder)).run()
    app.button(key="kb.ingest.folder").click().run()
    wait_for_jobs()
    return app.switch_page("pages/chat.py").run()


def test_answer_streams_with_its_sources(app, docs_folder):
    _ingested_app(app, docs_folder)
    app.multiselect(key="chat.kbs").select("docs").run()
    app.chat_input(key="chat.input").set_value("LMDeploy 支持哪些量化？").run()

    assert not app.exception
    assistant = app.chat_message[1]
    assert "canned answer" in assistant.markdown[0].value
    assert assistant.expander[0].label == "Sources (2)"
    assert "quant.md:1-3" in assistant.expander[0].markdown[0].value.replace("\\", "")
    assert "AWQ 4bit" in assistant.expander[0].code[0].value


def test_conversation_stays_on_screen_across_reruns_and_can_be_cleared(app, docs_folder):
    _ingested_app(app, docs_folder)
    app.chat_input(key="chat.input").set_value("hello").run()
    app.chat_input(key="chat.input").set_value("and again").run()
    app.run()
    assert [m.name for m in app.chat_message] == ["user", "assistant", "user", "assistant"]
    app.button(key="chat.clear").click().run()
    assert len(app.chat_message) == 0
