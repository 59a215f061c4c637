"""The Models page as a newcomer meets it: confirmations, progress that says what it is doing,
adding a server, and a Chinese page that stays Chinese (issue 16)."""

from __future__ import annotations

import re
import threading
import time

from streamlit.testing.v1 import AppTest

from core.models.catalog import BUILTIN_MODELS, EMBEDDED_KEY
from core.models.custom import row_for_endpoint
from core.models.loader import LoadStep, available_devices
from tests.app.conftest import ENTRY, wait_for_jobs
from tests.fakes import FakeHub
from ui import keys
from ui.common import services


def _models(app):
    return app.switch_page("pages/models.py").run()


def _names(app) -> list[str]:
    return list(app.dataframe[0].value.iloc[:, 0])


def test_removing_a_row_asks_first_and_names_the_model(app):
    services().catalog.add(row_for_endpoint("http://127.0.0.1:9/v1", "qwen", "Team server"))
    _models(app)
    app.selectbox(key=keys.MODELS_PICK).select("team-server-remote").run()

    app.button(key=keys.MODELS_REMOVE).click().run()
    question = next(m.value for m in app.markdown if "from the catalog?" in m.value)
    assert "Remove **Team server** from the catalog?" in question and "no files are deleted" in question
    assert "Team server" in _names(app)  # nothing happens before the answer
    app.button(key=keys.MODELS_REMOVE_CANCEL).click().run()
    assert "Team server" in _names(app)

    app.button(key=keys.MODELS_REMOVE).click().run()
    app.button(key=keys.MODELS_REMOVE_YES).click().run()
    assert "Team server" not in _names(app)
    assert [t.value for t in app.toast] == ["Removed Team server from the catalog."]


def test_adding_a_server_confirms_empties_the_form_and_lists_the_row(app):
    _models(app)
    form = next(e for e in app.expander if e.label == "Add a model")
    first, tabs = form.children[0], form.children[1]
    assert first.key == keys.MODELS_ADD_NAME and tabs.type == "tab_container"  # the name comes before every Add

    app.text_input(key=keys.MODELS_ADD_NAME).input("Team server").run()
    app.text_input(key=keys.MODELS_ADD_URL).input("http://127.0.0.1:9/v1").run()
    app.text_input(key=keys.MODELS_ADD_SERVED).input("qwen").run()
    app.button(key=keys.MODELS_ADD_SERVER).click().run()

    assert [t.value for t in app.toast] == ["Added Team server to the catalog."]
    for field in (keys.MODELS_ADD_NAME, keys.MODELS_ADD_URL, keys.MODELS_ADD_SERVED):
        assert app.text_input(key=field).value == ""
    table = app.dataframe[0].value
    assert table.iloc[-1]["Model"] == "Team server" and table.iloc[-1]["Status"] == "server"
    assert app.selectbox(key=keys.MODELS_PICK).value == "team-server-remote"


def test_loading_says_which_stage_it_is_in_and_for_how_long(app, monkeypatch):
    manager = services().models
    fake_backend_load = manager.load
    reached, release = [threading.Event() for _ in range(2)], [threading.Event() for _ in range(2)]

    def staged_load(key, options=None, progress=None):
        for number, stage in enumerate(("convert", "weights"), start=1):
            progress(LoadStep(stage, number, 2))
            reached[number - 1].set()
            release[number - 1].wait(30)
        return fake_backend_load(key, options)

    monkeypatch.setattr(manager, "load", staged_load)
    _models(app)
    app.button(key=keys.MODELS_LOAD).click().run()
    try:
        assert reached[0].wait(10)
        time.sleep(1.1)  # so the clocks show a second
        app.run()
        assert app.status[0].label == "Loading SmolLM2-135M-Instruct (embedded)…"
        text = app.progress[0].proto.text
        assert text.startswith("Step 1 of 2: Converting the bundled model into a model folder (first load only)…")
        step, total = re.search(r"\((\d+:\d\d) in this step, (\d+:\d\d) in all\)", text).groups()
        assert step != "0:00" and total != "0:00"
        assert "half a minute" not in text

        release[0].set()
        assert reached[1].wait(10)
        app.run()
        assert app.progress[0].proto.text.startswith("Step 2 of 2: Loading the weights…")
        assert app.progress[0].value == 50  # percent: one step of two done
    finally:
        for event in release:
            event.set()
    wait_for_jobs()
    app.run()
    assert app.success[0].value.startswith("In memory: SmolLM2-135M-Instruct")


def test_a_download_says_nothing_of_the_time_left_until_it_can_tell(app):
    arrived, release = threading.Event(), threading.Event()

    def first_bytes():
        arrived.set()
        release.wait(30)

    files = {"config.json": b'{"model_type": "qwen2"}', "model.safetensors": b"\x00" * 4096}
    services().hub_client = lambda hub, endpoint: FakeHub(files, on_chunk=first_bytes)
    _models(app)
    app.selectbox(key=keys.MODELS_PICK).select("qwen2.5-0.5b-instruct").run()
    app.button(key=keys.MODELS_DOWNLOAD).click().run()
    try:
        assert arrived.wait(10)
        app.run()
        text = app.progress[0].proto.text
        assert text.endswith("GB · 0.0 MB/s") and "left" not in text and "unknown" not in text
    finally:
        release.set()
    wait_for_jobs()


def test_the_chinese_page_has_chinese_descriptions_placeholders_and_memory_words(app):
    app.selectbox(key=keys.LANG).select("zh").run()
    _models(app)
    assert any(c.value.startswith("随应用内置的小型英文模型") for c in app.caption)
    assert all(row.notes_zh for row in BUILTIN_MODELS if row.notes)
    assert {box.proto.placeholder for box in app.selectbox} == {"请选择"}
    memory = next(c for c in app.dataframe[0].value.columns if "bf16" in c)
    assert memory.startswith("显存" if available_devices()[0] == "cuda" else "内存")
    assert services().catalog.get(EMBEDDED_KEY).description("en").startswith("Tiny English model")


def _fresh_session(app_env, **query) -> AppTest:
    """What a reload is: a new session, with only the address (and its ?lang=) carried over."""
    at = AppTest.from_file(str(ENTRY), default_timeout=60)
    at.secrets["unused"] = "set so that no developer secrets.toml is read"
    at.query_params.update(query)
    return at.run()


def test_the_language_choice_survives_a_reload_through_the_address(app_env):
    first = _fresh_session(app_env)
    assert first.title[0].value == "Local Knowledge Assistant"  # no browser language asks for Chinese here
    first.selectbox(key=keys.LANG).select("zh").run()
    assert first.query_params["lang"] == ["zh"] or first.query_params["lang"] == "zh"

    reloaded = _fresh_session(app_env, lang="zh")
    assert reloaded.title[0].value == "本地知识库助手"
    assert reloaded.selectbox(key=keys.LANG).value == "zh"
    reloaded.selectbox(key=keys.LANG).select("en").run()
    assert _fresh_session(app_env, lang="en").title[0].value == "Local Knowledge Assistant"
    assert _fresh_session(app_env, lang="klingon").title[0].value == "Local Knowledge Assistant"
