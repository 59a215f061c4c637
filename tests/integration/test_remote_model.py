import time

import pytest

from core.errors import EndpointUnreachable, ServerKeyNotAllowed
from core.models.custom import row_for_endpoint, slug
from core.services import build_services
from core.settings import Settings
from tests.openai_server import OpenAIServer


@pytest.fixture
def services(tmp_path):
    return build_services(Settings(data_dir=tmp_path / "data"))


def test_remote_model_streams_through_the_openai_protocol(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_SERVER_KEY", "secret-key")
    with OpenAIServer(reply="Paris is the capital of France.", api_key="secret-key") as server:
        # The key goes to the server the configuration allows it for.
        services = build_services(Settings(data_dir=tmp_path / "data", server_keys={server.base_url: "MY_SERVER_KEY"}))
        row = row_for_endpoint(server.base_url, server.model, "Test server")
        services.catalog.add(row)
        resident = services.models.load(row.key)
        assert resident.spec.key == row.key and services.model_status(row.key).state == "loaded"

        llm = services.models.chat_model(max_new_tokens=64, temperature=0.1, repetition_penalty=1.1)
        pieces = [chunk.content for chunk in llm.stream("What is the capital of France?")]
        assert len([p for p in pieces if p]) > 1
        assert "".join(pieces) == "Paris is the capital of France."
        assert llm.invoke("again").content == "Paris is the capital of France."

    sent = server.requests[0]
    assert sent["model"] == "test-model" and sent["stream"] is True
    assert sent["max_tokens"] == 64 and sent["temperature"] == 0.1 and sent["repetition_penalty"] == 1.1
    assert sent["messages"] == [{"role": "user", "content": "What is the capital of France?"}]


def test_a_server_that_is_not_running_is_reported_quickly(services):
    row = row_for_endpoint("http://127.0.0.1:9/v1", "anything")
    services.catalog.add(row)
    started = time.perf_counter()
    with pytest.raises(EndpointUnreachable) as caught:
        services.models.load(row.key)
    assert time.perf_counter() - started < 10
    assert "did not answer" in str(caught.value)


def test_a_key_not_allowed_for_the_server_is_not_sent(services, monkeypatch):
    monkeypatch.setenv("MY_SERVER_KEY", "secret-key")
    with OpenAIServer(api_key="secret-key") as server:
        row = row_for_endpoint(server.base_url, server.model, "Test server", api_key_env="MY_SERVER_KEY")
        services.catalog.add(row)
        with pytest.raises(ServerKeyNotAllowed):
            services.models.load(row.key)
        services.catalog.add(row_for_endpoint(server.base_url, server.model, "No key"))
        with pytest.raises(EndpointUnreachable):  # sent no key, so the server refuses
            services.models.load(slug("No key") + "-remote")
