from tests.app.conftest import wait_for_jobs


def test_catalog_lists_the_seed_models_with_their_status(app):
    app.switch_page("pages/models.py").run()
    table = app.dataframe[0].value
    names = list(table["Model"])
    assert "Qwen2-7B-Instruct" in names and "internlm-chat-7b" in names
    status = dict(zip(table["Model"], table["Status"], strict=True))
    assert status["SmolLM2-135M-Instruct (embedded)"] == "bundled"
    assert status["gemma-2-9b-it"] == "not downloaded"


def test_load_runs_in_the_background_and_survives_page_switches(app):
    app.switch_page("pages/models.py").run()
    app.button(key="models.load").click().run()
    wait_for_jobs()
    app.switch_page("pages/start.py").run()
    assert "Loaded: SmolLM2-135M-Instruct (embedded)" in [c.value for c in app.caption]
    app.switch_page("pages/models.py").run()
    assert app.success[0].value.startswith("In memory: SmolLM2-135M-Instruct")
    assert app.table is not None and "loaded" in list(app.dataframe[0].value["Status"])


def test_try_it_streams_a_reply_and_unload_frees_the_model(app):
    app.switch_page("pages/models.py").run()
    app.button(key="models.load").click().run()
    wait_for_jobs()
    app.run()
    app.button(key="models.try_send").click().run()
    assert any("canned answer" in m.value for m in app.markdown)
    app.button(key="models.unload").click().run()
    assert app.info[0].value == "No model in memory."
