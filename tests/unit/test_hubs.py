"""The real hub clients, pointed where no hub answers: they must fail within seconds."""

import time

import pytest

from core.errors import HubUnreachable
from core.models.hubs import HuggingFaceClient, ModelScopeClient

CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused


@pytest.mark.parametrize(
    "client",
    [lambda: ModelScopeClient(CLOSED_PORT), lambda: HuggingFaceClient(CLOSED_PORT)],
    ids=["modelscope", "huggingface"],
)
def test_unreachable_hub_is_reported_within_seconds(client):
    hub = client()
    started = time.perf_counter()
    with pytest.raises(HubUnreachable) as caught:
        hub.list_files("Qwen/Qwen2.5-0.5B-Instruct")
    assert time.perf_counter() - started < 10
    assert "folder I already have" in str(caught.value)
    with pytest.raises(HubUnreachable):
        hub.open("Qwen/Qwen2.5-0.5B-Instruct", "config.json")
