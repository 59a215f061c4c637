"""The generation engine: plain on the CPU, static cache with compiled decoding on CUDA."""

import threading

import pytest
from langchain_core.messages import HumanMessage

from core.models.chat import LocalChatModel
from core.models.loader import LoadOptions, load
from core.models.spec import GenerationDefaults
from tests.conftest import TEST_DEVICE
from tests.tiny_models import build_tiny_model, tiny_spec


def _chat(folder, settings, fast):
    spec = tiny_spec(folder, family="qwen2", defaults=GenerationDefaults(max_new_tokens=24, temperature=0.0))
    return LocalChatModel(loaded=load(spec, settings, LoadOptions(device=TEST_DEVICE, fast_generation=fast)))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("engine") / "qwen2", "qwen2")


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory):
    from core.settings import Settings

    return Settings(data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def fast(folder, module_settings):
    """One compiled model for the module: compiling is the slow part on a GPU."""
    return _chat(folder, module_settings, fast=True)


def test_fast_path_is_used_exactly_where_it_can_work(fast):
    engine = fast.loaded.engine
    if TEST_DEVICE == "cuda":
        assert engine.fast, engine.reason
    else:
        assert not engine.fast and "CUDA" in engine.reason


def test_fast_path_gives_the_same_greedy_answer_as_plain_generation(fast, folder, settings):
    plain = _chat(folder, settings, fast=False)
    for question in ["short", "a much longer question " * 12]:
        assert fast.invoke(question).content == plain.invoke(question).content


@pytest.mark.skipif(TEST_DEVICE != "cuda", reason="compiled decoding runs on CUDA only")
def test_new_prompt_lengths_do_not_recompile_after_warm_up(fast):
    from torch._dynamo.utils import counters

    chat = fast
    graphs = counters["stats"]["unique_graphs"]
    for words in (3, 40, 150):
        chat.invoke(" ".join(["token"] * words))
    assert counters["stats"]["unique_graphs"] == graphs


def test_a_stopped_stream_frees_the_engine_for_the_next_request(fast):
    chat = fast
    stream = chat.stream([HumanMessage("hello")], max_new_tokens=500)
    next(stream)
    stream.close()
    done = threading.Event()
    threading.Thread(target=lambda: (chat.invoke("again"), done.set()), daemon=True).start()
    assert done.wait(60)


def test_prompts_longer_than_the_static_cache_fall_back_to_plain_generation(fast, folder, settings):
    plain = _chat(folder, settings, fast=False)
    engine = fast.loaded.engine
    kept, engine.max_cache_len = engine.max_cache_len, 32  # shorter than the prompt below
    try:
        assert fast.invoke("x " * 60).content == plain.invoke("x " * 60).content
    finally:
        engine.max_cache_len = kept
