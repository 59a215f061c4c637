from ui import keys
from ui.text import TEXT


def test_landing_page_says_what_to_do_first(app):
    assert not app.exception
    assert app.title[0].value == "Local Knowledge Assistant"
    headers = [h.value for h in app.subheader]
    assert headers == ["1. Load a chat model", "2. Build a knowledge base", "3. Ask questions"]
    assert "No model loaded yet." in [c.value for c in app.caption]


def test_language_switch_turns_the_page_chinese(app):
    app.selectbox(key=keys.LANG).select("zh").run()
    assert app.title[0].value == "本地知识库助手"
    assert app.subheader[0].value == "1. 加载对话模型"


def test_chosen_language_stays_when_the_page_changes(app):
    app.selectbox(key=keys.LANG).select("zh").run()
    app.switch_page("pages/models.py").run()
    assert app.title[0].value == "模型"


def test_every_text_exists_in_both_languages():
    missing = [key for key, entry in TEXT.items() if not (entry.get("en") and entry.get("zh"))]
    assert missing == []


def test_the_start_page_says_the_bundled_model_is_a_demo_and_what_to_load(app):
    notice = app.info[0].value.replace("\\", "")
    assert "SmolLM2-135M-Instruct (embedded) is a demo model" in notice
    assert "7B model on a GPU" in notice and "Qwen2.5-Coder-1.5B on a CPU" in notice and "model server" in notice
    app.selectbox(key=keys.LANG).select("zh").run()
    assert "演示模型" in app.info[0].value
