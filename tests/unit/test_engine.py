"""The generation engine: plain on the CPU, static cache with compiled decoding on CUDA.

On a CPU an engine asked for the fast path runs the same plain ``generate`` as one that was
not, so a test comparing the two there compares a path with itself and cannot fail: those
comparisons run only with KBA_TEST_DEVICE=cuda (the convention of tests/conftest.py). The
tests that run everywhere check what the engine must get right on any device: which path it
takes, that it stops on a stop token and after max_new_tokens, and that it streams exactly the
text it returns.
"""

import dataclasses
import threading
import types

import pytest
from langchain_core.messages import HumanMessage

from core.models.chat import LocalChatModel
from core.models.decoder import Request
from core.models.loader import LoadOptions, load
from core.models.spec import GenerationDefaults
from tests.conftest import TEST_DEVICE
from tests.tiny_models import build_tiny_model, tiny_spec

CUDA_ONLY = pytest.mark.skipif(
    TEST_DEVICE != "cuda",
    reason="fast and plain decoding are the same path on CPU; this comparison only means something on CUDA",
)
MAX_NEW_TOKENS = 24


def _chat(folder, settings, fast):
    spec = tiny_spec(folder, family="qwen2", defaults=GenerationDefaults(max_new_tokens=MAX_NEW_TOKENS, temperature=0))
    return LocalChatModel(loaded=load(spec, settings, LoadOptions(device=TEST_DEVICE, fast_generation=fast)))


def _record(chat, monkeypatch):
    """Each request ``chat``'s engine runs from now on: the request, the new token ids, the
    thread it ran on, and, when it took plain ``generate``, its keyword arguments and whether it
    ran in inference mode (``plain`` False: the fast path's own decoder ran it)."""
    import torch

    engine, model = chat.loaded.engine, chat.loaded.model
    real_generate, real_model_generate = engine._generate, model.generate
    calls = []

    def generate(request):
        call = types.SimpleNamespace(request=request, plain=False, kwargs=None, inference=None)
        call.thread = threading.current_thread()
        calls.append(call)
        call.new = real_generate(request)
        return call.new

    def model_generate(**kwargs):
        calls[-1].plain, calls[-1].kwargs, calls[-1].inference = True, kwargs, torch.is_inference_mode_enabled()
        return real_model_generate(**kwargs)

    monkeypatch.setattr(engine, "_generate", generate)
    monkeypatch.setattr(model, "generate", model_generate)
    return calls


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("engine") / "qwen2", "qwen2")


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory):
    from core.settings import Settings

    return Settings(data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def fast(folder, module_settings):
    """One model loaded with the fast path asked for (compiling is the slow part on a GPU)."""
    return _chat(folder, module_settings, fast=True)


@pytest.fixture
def greedy(fast, monkeypatch):
    """The token ids the model writes for "hello" when nothing stops it before max_new_tokens."""
    calls = _record(fast, monkeypatch)
    fast.invoke("hello")
    ids = calls[0].new
    assert len(ids) == MAX_NEW_TOKENS and not set(ids) & set(fast.stop_token_ids())
    return ids


# What runs everywhere: these fail on a CPU when the engine is wrong.


def test_fast_path_is_used_exactly_where_it_can_work(fast, monkeypatch):
    engine = fast.loaded.engine
    calls = _record(fast, monkeypatch)
    fast.invoke("short")
    (call,) = calls
    if TEST_DEVICE == "cuda":
        assert engine.fast, engine.reason
        assert not call.plain and engine.attention != "none"
    else:
        assert not engine.fast and "CUDA" in engine.reason
        # So on a CPU "fast" is plain generation: the comparisons below would compare it with itself.
        assert call.plain and call.kwargs["disable_compile"] is True


def test_plain_generation_runs_uncompiled_in_inference_mode(folder, settings, monkeypatch):
    plain = _chat(folder, settings, fast=False)
    assert not plain.loaded.engine.fast and plain.loaded.engine.reason == "not requested"
    calls = _record(plain, monkeypatch)
    plain.invoke("short")
    (call,) = calls
    assert call.plain and call.kwargs["disable_compile"] is True and "past_key_values" not in call.kwargs
    assert call.inference  # no autograd bookkeeping for each op of each token


def test_generation_stops_on_the_first_stop_token(fast, greedy, monkeypatch):
    # A token the model writes in the middle, for the first time, made a stop token.
    at = next(i for i in range(3, len(greedy)) if greedy[i] not in greedy[:i])
    spec = fast.loaded.spec
    stop = fast.loaded.tokenizer.convert_ids_to_tokens(greedy[at])
    stopping = LocalChatModel(
        loaded=dataclasses.replace(fast.loaded, spec=dataclasses.replace(spec, stop_tokens=(*spec.stop_tokens, stop)))
    )
    assert greedy[at] in stopping.stop_token_ids()
    calls = _record(fast, monkeypatch)
    stopping.invoke("hello")
    assert calls[0].new == greedy[: at + 1]


def test_generation_stops_after_max_new_tokens(fast, greedy, monkeypatch):
    calls = _record(fast, monkeypatch)
    for limit in (1, 7):
        fast.invoke("hello", max_new_tokens=limit)
        assert calls[-1].new == greedy[:limit]


def test_the_stream_is_the_text_it_returns(fast, monkeypatch):
    calls = _record(fast, monkeypatch)
    for question in ["hello", "a much longer question " * 12]:
        pieces = [chunk.content for chunk in fast.stream(question)]
        streamed = calls[-1].new
        returned = fast.invoke(question).content
        assert len(pieces) > 1
        assert "".join(pieces) == returned == fast.loaded.tokenizer.decode(streamed, skip_special_tokens=True)
        assert calls[-1].new == streamed  # greedy: the same tokens both times


def test_a_cancelled_request_ends_at_the_next_token(fast):
    # What a closed stream does (chat.py sets the request's cancel event): the engine must stop
    # at once, on the fast path and on the plain one, not write on to max_new_tokens.
    cancel = threading.Event()
    heard = []

    def on_token(token):
        heard.append(token)
        cancel.set()

    loaded = fast.loaded
    ids = loaded.tokenizer("hello", return_tensors="pt")["input_ids"].to(loaded.model.device)
    request = Request(input_ids=ids, max_new_tokens=200, stop_ids=(), on_token=on_token, cancel=cancel)
    new = loaded.engine.submit(request).result(timeout=60)
    assert new == heard and len(new) <= 2  # generate may write the token it is computing


def test_a_stopped_stream_frees_the_engine_for_the_next_request(fast):
    chat = fast
    stream = chat.stream([HumanMessage("hello")], max_new_tokens=500)
    next(stream)
    stream.close()
    done = threading.Event()
    threading.Thread(target=lambda: (chat.invoke("again"), done.set()), daemon=True).start()
    assert done.wait(60)


# What only means something on CUDA, where the fast path is a different path.


@CUDA_ONLY
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


@CUDA_ONLY
def test_answers_that_cross_reaches_equal_plain_generation_without_compiling_again(folder, settings, monkeypatch):
    """The grouped way (the one that attends only to a step's reach) is forced: on a GPU where
    sdpa measured faster, the reach would not be used and this test would test nothing."""
    import torch
    from torch._dynamo.utils import counters

    from core.models import decoder

    monkeypatch.setattr(decoder, "attention_timings", lambda **_: {"GROUPED": 0.0})
    engine = _chat(folder, settings, fast=True).loaded.engine
    assert engine.attention == "GROUPED" and engine.decoder.uses_reach
    assert tuple(engine.decoder.reaches) == (512,)  # the tiny model's cache: 1,024 places
    plain = _chat(folder, settings, fast=False).loaded.engine
    graphs = counters["stats"]["unique_graphs"]
    # From the reach into the whole cache mid-answer; an answer as long as the cache allows.
    for length in (500, engine.max_cache_len - MAX_NEW_TOKENS):
        ids = torch.randint(3, 200, (1, length), generator=torch.Generator().manual_seed(length))

        def answer(engine, ids=ids):
            request = Request(input_ids=ids.to(engine.model.device), max_new_tokens=MAX_NEW_TOKENS, stop_ids=())
            return engine.submit(request).result()

        assert answer(engine) == answer(plain)
    assert counters["stats"]["unique_graphs"] == graphs


@CUDA_ONLY
def test_prompts_longer_than_the_static_cache_fall_back_to_plain_generation(fast, folder, settings, monkeypatch):
    plain = _chat(folder, settings, fast=False)
    engine = fast.loaded.engine
    calls = _record(fast, monkeypatch)
    kept, engine.max_cache_len = engine.max_cache_len, 32  # shorter than the prompt below
    try:
        assert fast.invoke("x " * 60).content == plain.invoke("x " * 60).content
    finally:
        engine.max_cache_len = kept
    assert calls[0].plain and calls[0].kwargs["disable_compile"] is True


def test_every_load_keeps_the_fast_path_and_generates_on_one_thread(folder, settings, monkeypatch):
    """CUDA graphs belong to the thread that recorded them: when each load started its own
    generation thread, every model after the first in a process failed its warm-up (on CUDA)
    and fell back to plain generation without saying so.
    """
    from core.models.loader import release

    threads = []
    for _ in range(3):
        chat = _chat(folder, settings, fast=True)
        engine = chat.loaded.engine
        if TEST_DEVICE == "cuda":
            assert engine.fast, engine.reason  # warmed up on this load too
        calls = _record(chat, monkeypatch)
        assert chat.invoke("hello").content
        assert calls[0].plain == (TEST_DEVICE != "cuda")
        threads.append(calls[0].thread)
        release(chat.loaded)
    assert len(set(threads)) == 1 and threads[0] is not threading.main_thread()


def test_a_model_with_sliding_window_layers_says_why_it_takes_plain_generation(monkeypatch):
    """Gemma-2's sliding-window layers make the compiled step compile again at every token, so
    its warm-up would compile until dynamo's limit, then fall back. It is refused at once.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from core.models.engine import Engine

    shape = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    model = AutoModelForCausalLM.from_config(
        AutoConfig.for_model("gemma2", num_key_value_heads=1, head_dim=16, **shape)
    )
    # As if on a GPU: the refusal comes before anything runs there.
    monkeypatch.setattr(type(model), "device", property(lambda self: torch.device("cuda")))
    engine = Engine(model, fast=True)
    assert not engine.fast and engine.decoder is None
    assert engine.why == "sliding_window" and "sliding-window layers" in engine.reason
