import threading

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from core.models.chat import LocalChatModel, to_chat_messages
from core.models.loader import LoadOptions, load
from tests.conftest import TEST_DEVICE
from tests.tiny_models import build_tiny_model, tiny_spec


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def chat(tiny_folder, settings):
    return LocalChatModel(loaded=load(tiny_spec(tiny_folder), settings, LoadOptions(device=TEST_DEVICE)))


def test_prompt_uses_the_tokenizer_chat_template(chat):
    messages = [SystemMessage("Be brief."), HumanMessage("你好"), AIMessage("Hi"), HumanMessage("2+2?")]
    prompt = chat.render_prompt(messages)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n你好<|im_end|>\n"
        "<|im_start|>assistant\nHi<|im_end|>\n"
        "<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_prompt_does_not_grow_between_calls(chat):
    first = chat.render_prompt([HumanMessage("same question")])
    chat.invoke("something else")
    assert chat.render_prompt([HumanMessage("same question")]) == first


def test_system_text_is_folded_into_first_user_turn_when_no_system_role():
    chat = to_chat_messages([SystemMessage("Rules."), HumanMessage("Q1"), AIMessage("A1"), HumanMessage("Q2")], False)
    assert chat == [
        {"role": "user", "content": "Rules.\n\nQ1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
    ]


def test_stream_yields_several_pieces_and_invoke_returns_their_join(chat):
    pieces = [c.content for c in chat.stream("hello there")]
    assert len(pieces) > 1
    assert chat.invoke("hello there").content == "".join(pieces)


def test_stop_strings_cut_the_reply(chat):
    full = chat.invoke("hello").content
    stop = full[3:5]
    assert chat.invoke("hello", stop=[stop]).content == full[: full.index(stop)]


def test_generation_stops_on_the_catalog_stop_token(tmp_path, settings):
    # Every logit is zero, so greedy decoding picks id 0 forever: "<|im_end|>" here.
    folder = build_tiny_model(tmp_path / "silent", silent=True, eos="<|endoftext|>")
    plain = LoadOptions(device=TEST_DEVICE, fast_generation=False)
    stops = load(tiny_spec(folder), settings, plain)
    ignores = load(tiny_spec(folder, stop_tokens=()), settings, plain)
    assert LocalChatModel(loaded=stops).stop_token_ids() == [0, 2]

    counted = []
    real_generate = ignores.model.generate

    def counting_generate(**kwargs):
        out = real_generate(**kwargs)
        counted.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    ignores.model.generate = counting_generate
    stops.model.generate = counting_generate
    LocalChatModel(loaded=ignores).invoke("hi")
    LocalChatModel(loaded=stops).invoke("hi")
    assert counted == [12, 1]


def test_abandoned_stream_frees_the_model_for_the_next_caller(chat):
    stream = chat.stream("hello")
    next(stream)
    stream.close()
    done = threading.Event()
    threading.Thread(target=lambda: (chat.invoke("again"), done.set()), daemon=True).start()
    assert done.wait(30)


def test_sampling_parameters_override_catalog_defaults(chat):
    assert chat.sampling_parameters()["max_new_tokens"] == 12
    tuned = chat.model_copy(update={"max_new_tokens": 3, "temperature": 0.5})
    assert tuned.sampling_parameters() == {
        "max_new_tokens": 3,
        "temperature": 0.5,
        "top_p": 0.9,
        "repetition_penalty": 1.0,
    }
    assert tuned._identifying_params["model"] == "tiny"
