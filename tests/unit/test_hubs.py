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


@pytest.mark.parametrize(
    "client",
    [lambda: ModelScopeClient(CLOSED_PORT), lambda: HuggingFaceClient(CLOSED_PORT)],
    ids=["modelscope", "huggingface"],
)
def test_an_unreachable_mirror_is_named_not_the_hub_it_mirrors(client):
    with pytest.raises(HubUnreachable) as caught:
        client().list_files("Qwen/Qwen2.5-0.5B-Instruct")
    for lang in ("en", "zh"):
        message = caught.value.message(lang)
        assert CLOSED_PORT in message and "Hugging Face" not in message and "ModelScope" not in message


def test_the_hubs_themselves_keep_their_names():
    assert HuggingFaceClient().name == "Hugging Face"
    assert HuggingFaceClient("https://huggingface.co").name == "Hugging Face"
    assert ModelScopeClient().name == "ModelScope"


def test_a_mirror_address_is_named_without_its_credentials():
    assert HuggingFaceClient("https://me:secret@mirror.example.org/").name == "https://mirror.example.org"
