"""Every catalog family, on a tiny random model with that family's real tokenizer setup:
the exact prompt (golden strings), the stop token, and streaming."""

import dataclasses
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from core.models.catalog import builtin_spec
from core.models.chat import LocalChatModel
from core.models.loader import LoadOptions, load
from core.rag.answer import AnswerSettings, Turn, build_messages
from core.rag.prompts import chat_system_prompt, qa_system_prompt, qa_template
from tests.conftest import TEST_DEVICE
from tests.tiny_models import build_tiny_model

TEMPLATES = Path(__file__).resolve().parents[1] / "data" / "chat_templates"

# Per catalog row: architecture, special tokens (the row's first stop token first, so a model
# whose logits are all zero emits it at once), bos, eos.
FAMILIES = {
    "smollm2-135m-instruct": ("llama", ("<|im_end|>", "<|im_start|>", "<|endoftext|>"), None, "<|endoftext|>"),
    "qwen2-7b-instruct": ("qwen2", ("<|im_end|>", "<|im_start|>", "<|endoftext|>"), None, "<|endoftext|>"),
    "qwen2.5-7b-instruct": ("qwen2", ("<|im_end|>", "<|im_start|>", "<|endoftext|>"), None, "<|endoftext|>"),
    "qwen2.5-coder-1.5b-instruct-offline": (
        "qwen2",
        ("<|im_end|>", "<|im_start|>", "<|endoftext|>"),
        None,
        "<|endoftext|>",
    ),
    "qwen3-8b": ("qwen3", ("<|im_end|>", "<|im_start|>", "<|endoftext|>"), None, "<|endoftext|>"),
    "gemma-2-9b-it": ("gemma2", ("<end_of_turn>", "<pad>", "<eos>", "<bos>", "<start_of_turn>"), "<bos>", "<eos>"),
    "meta-llama-3-8b-instruct": (
        "llama",
        ("<|eot_id|>", "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"),
        "<|begin_of_text|>",
        "<|end_of_text|>",
    ),
    "internlm2_5-7b-chat": ("llama", ("<|im_end|>", "<s>", "</s>", "<|im_start|>"), "<s>", "</s>"),
    "glm-4-9b-chat": (
        "glm",
        ("<|endoftext|>", "[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"),
        None,
        "<|user|>",
    ),
    "xverse-7b-chat": ("llama", ("<|endoftext|>", "<pad>", "<|startoftext|>"), "<|startoftext|>", "<|endoftext|>"),
    "internlm-chat-7b": ("llama", ("<eoa>", "<unk>", "<s>", "</s>", "<eoh>"), "<s>", "</s>"),
}

CONVERSATION = [HumanMessage("Hello"), AIMessage("Hi there"), HumanMessage("How are you?")]
SYSTEM = SystemMessage("You are terse.")

GOLDEN = {
    "smollm2-135m-instruct": (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n"
        "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
    ),
    "qwen2-7b-instruct": (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
    ),
    "qwen2.5-7b-instruct": (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n"
        "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
    ),
    # The template inside the GGUF file renders exactly as Qwen2.5's own.
    "qwen2.5-coder-1.5b-instruct-offline": (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n"
        "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
    ),
    "qwen3-8b": (
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n"
        "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n",
    ),
    "gemma-2-9b-it": (
        "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n"
        "<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n",
        "<bos><start_of_turn>user\nYou are terse.\n\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n"
        "<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n",
    ),
    "meta-llama-3-8b-instruct": (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    ),
    "internlm2_5-7b-chat": (
        "<s><|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n"
        "<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
        "<s><|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
        "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
    ),
    "glm-4-9b-chat": (
        "[gMASK]<sop><|user|>\nHello<|assistant|>\nHi there<|user|>\nHow are you?<|assistant|>",
        "[gMASK]<sop><|system|>\nYou are terse.<|user|>\nHello<|assistant|>\nHi there"
        "<|user|>\nHow are you?<|assistant|>",
    ),
    "xverse-7b-chat": (
        "Human: Hello\n\nAssistant: Hi there<|endoftext|>Human: How are you?\n\nAssistant: ",
        "Human: You are terse.\n\nHello\n\nAssistant: Hi there<|endoftext|>Human: How are you?\n\nAssistant: ",
    ),
    "internlm-chat-7b": (
        "<s><|User|>:Hello<eoh>\n<|Bot|>:Hi there<eoa>\n<|User|>:How are you?<eoh>\n<|Bot|>:",
        "<s><|User|>:You are terse.\n\nHello<eoh>\n<|Bot|>:Hi there<eoa>\n<|User|>:How are you?<eoh>\n<|Bot|>:",
    ),
}


def _template(key):
    path = TEMPLATES / f"{key}.jinja"
    return path.read_text(encoding="utf-8") if path.is_file() else None


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    key = request.param
    arch, specials, bos, eos = FAMILIES[key]
    folder = build_tiny_model(
        tmp_path_factory.mktemp(key) / "model",
        arch,
        specials,
        eos=eos,
        bos=bos,
        chat_template=_template(key),
        silent=True,
    )
    row = builtin_spec(key)
    spec = dataclasses.replace(
        row,
        source="local",
        local_path=str(folder),
        trust_remote_code=False,
        defaults=dataclasses.replace(row.defaults, max_new_tokens=12, temperature=0.0),
    )
    return key, spec


@pytest.fixture(scope="module")
def chat(family, tmp_path_factory):
    from core.settings import Settings

    key, spec = family
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    return key, LocalChatModel(loaded=load(spec, settings, LoadOptions(device=TEST_DEVICE, fast_generation=False)))


def test_prompt_matches_the_family_golden_string(chat):
    key, model = chat
    without_system, with_system = GOLDEN[key]
    assert model.render_prompt(CONVERSATION) == without_system
    assert model.render_prompt([SYSTEM, *CONVERSATION]) == with_system


def test_generation_stops_on_the_family_stop_token(chat):
    key, model = chat
    stop_id = model.loaded.tokenizer.convert_tokens_to_ids(FAMILIES[key][1][0])
    assert stop_id in model.stop_token_ids()
    generated = []
    real = model.loaded.model.generate

    def counting(**kwargs):
        out = real(**kwargs)
        generated.append(out[0, kwargs["input_ids"].shape[1] :].tolist())
        return out

    model.loaded.model.generate = counting
    try:
        reply = model.invoke(CONVERSATION).content
    finally:
        model.loaded.model.generate = real
    assert generated == [[stop_id]]
    assert reply == ""


def test_reply_streams_through_the_same_path(chat):
    _, model = chat
    chunks = list(model.stream(CONVERSATION, max_new_tokens=3))
    assert chunks and chunks[-1].chunk_position == "last"


# A conversation as the Chat page leaves it: an answered question, then questions whose answers
# never came (stopped before the model spoke, or failed), then the new question.
MESSY_HISTORY = [
    Turn("user", "Hello"),
    Turn("assistant", "Hi there"),
    Turn("user", "Never answered"),
    Turn("assistant", ""),
    Turn("user", "Also never answered"),
]


@pytest.mark.parametrize("grounded", [False, True], ids=["without knowledge base", "with knowledge base"])
def test_the_answer_pipeline_never_sends_two_user_turns_in_a_row(chat, grounded):
    _, model = chat
    system = qa_system_prompt("en") if grounded else chat_system_prompt("en")
    last = (
        qa_template("en").format(context="[1] a.md:1-2\nAWQ", question="How are you?") if grounded else "How are you?"
    )
    messages = build_messages(system, MESSY_HISTORY, last, AnswerSettings(lang="en"))
    assert [m.type for m in messages] == ["system", "human", "ai", "human"]
    # Every family's own template accepts it (Gemma-2's raises on anything but alternation),
    # and it is exactly the clean conversation the golden strings above describe.
    prompt = model.render_prompt(messages)
    assert prompt == model.render_prompt([SystemMessage(system), *CONVERSATION[:2], HumanMessage(last)])
    assert "never answered" not in prompt.lower() and prompt.count("How are you?") == 1
