"""The Models page starts an engine server for a downloaded model, shows its health and log,
attaches it to the catalog and stops it (stand-in engines: tests/stand_in_engine.py)."""

import time

import pytest

from core.models.custom import row_from_folder
from tests import stand_in_engine
from ui.common import services


@pytest.fixture(autouse=True)
def _no_server_left_running(app_env):
    yield
    for server in services().servers.all():
        if server.status in {"starting", "ready"}:
            services().servers.stop(server.id, wait_s=2)


def _models(app):
    return app.switch_page("pages/models.py").run()


def _names(app):
    return list(app.dataframe[0].value["Model"])


def _downloaded_model(tmp_path):
    folder = tmp_path / "my-qwen"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen2"}')
    (folder / "tokenizer_config.json").write_text('{"chat_template": "{{ messages }}"}')
    row = row_from_folder(folder, "My Qwen")
    services().catalog.add(row)
    return row


def test_without_an_engine_the_page_says_how_to_get_one(app):
    _models(app)
    assert any("No engine is installed beside the app" in c.value for c in app.caption)


def test_an_engine_server_is_started_used_and_stopped_from_the_models_page(app, tmp_path, monkeypatch):
    stand_in_engine.put_on_paths(tmp_path / "engines", monkeypatch)
    row = _downloaded_model(tmp_path)
    _models(app)
    app.selectbox(key="models.pick").select(row.key).run()
    app.selectbox(key="models.serve.engine").select("lmdeploy").run()
    app.slider(key="models.serve.gpu").set_value(0.5).run()
    app.button(key="models.serve.start").click().run()
    assert not app.error
    assert any(i.value.startswith("Starting: loading the model") for i in app.info)

    deadline = time.monotonic() + 30
    while not any(s.value == "Ready: answering." for s in app.success) and time.monotonic() < deadline:
        time.sleep(0.3)
        app.run()
    assert any(s.value == "Ready: answering." for s in app.success)
    attached = "My Qwen (LMDeploy)"
    assert attached in _names(app)  # in the catalog, to load like any model
    log = "\n".join(c.value for c in app.code)
    assert "lmdeploy stand-in: serving on port" in log
    server = services().servers.all()[0]
    assert "--cache-max-entry-count 0.5" in " ".join(server.command)

    app.button(key=f"models.serve.stop.{server.id}").click().run()
    assert any(c.value == "Stopped." for c in app.caption)
    assert attached not in _names(app)


def test_the_demo_model_and_model_servers_are_not_offered_to_an_engine(app, tmp_path, monkeypatch):
    stand_in_engine.put_on_paths(tmp_path / "engines", monkeypatch)
    _models(app)  # the bundled demo model is picked first
    assert any("is the app's demo model; engines are for the models you download" in c.value for c in app.caption)
    assert not [b for b in app.button if b.key == "models.serve.start"]
