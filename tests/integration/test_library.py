"""The README's Python section, run as written against the real bundled models: the embedded
SmolLM2 as a LangChain chat model, a knowledge base (built with the bundled multilingual
embedding model from a small folder) as a retriever, and the Chat page's pipeline in one call.

Every line of code the README's "Use it from Python" section shows appears verbatim in this
file (``test_every_line_of_the_readme_python_section_is_run_here`` checks it), so a change
there that these tests do not follow fails.
"""

# The README's own print() lines run here as written; capsys reads back what they print.
# ruff: noqa: T201

from __future__ import annotations

import re
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

import core
from core import library
from core.errors import KnowledgeBaseNotFound
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.models.chat import LocalChatModel
from core.rag.attribution import attributed_markdown
from core.settings import get_settings

README = Path(__file__).resolve().parents[2] / "README.md"
# The bundled model writes up to 256 tokens by default, which takes minutes on a busy CPU; the
# tests cap the chat model the README's first line gives (not part of the README's code).
SHORT = 32

LMDEPLOY = {
    "quantization.md": (
        "# 量化\n\nLMDeploy 支持 AWQ 4bit 权重量化（W4A16），也支持 KV cache int8 和 int4 量化。\n\n"
        "## W4A16\n\n使用 `lmdeploy lite auto_awq` 命令即可把模型量化为 4bit 权重。\n"
    ),
    "serving.md": "# Serving\n\nTo serve a model, run `lmdeploy serve api_server`. It listens on port 23333.\n",
}


def readme_python_lines() -> list[str]:
    """The code lines of the README's "Use it from Python" section, without their comments:
    its ```python blocks and the calls it shows inline."""
    section = README.read_text(encoding="utf-8").split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    inline = re.findall(r"`((?:load_chat_model|open_retriever|ask)\(.*?\))`", section)
    return [line for line in lines if line] + inline


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    """A knowledge base "课程笔记" built with the default (multilingual) embedding model."""
    root = tmp_path_factory.mktemp("library")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("KBA_DATA_DIR", str(root / "data"))
    monkeypatch.delenv("KBA_LLM_BACKEND", raising=False)  # the real model, whatever the shell says
    get_settings.cache_clear()
    library.get_services.cache_clear()
    docs = root / "docs"
    docs.mkdir()
    for name, text in LMDEPLOY.items():
        (docs / name).write_text(text, encoding="utf-8")
    services = core.get_services()
    kb = services.knowledge.create("课程笔记", services.settings.default_embedding, SplitterSettings(500, 150))
    assert services.jobs.wait(services.start_ingest(kb, FolderInput(docs)).id, timeout=300).status == "done"
    yield services
    services.models.unload()
    library.get_services.cache_clear()
    get_settings.cache_clear()
    monkeypatch.undo()


@pytest.fixture(scope="module")
def llm(notes):
    """The README's chat model: the bundled SmolLM2, capped at ``SHORT`` new tokens."""
    from core import load_chat_model, open_retriever  # noqa: F401 - the README's import line, as written

    llm = load_chat_model()  # the bundled model; or a catalog key, e.g. "qwen2-7b-instruct"
    llm.max_new_tokens = SHORT
    return llm


def test_every_line_of_the_readme_python_section_is_run_here():
    lines = readme_python_lines()
    assert len(lines) >= 5  # the section and its code blocks were found
    source = Path(__file__).read_text(encoding="utf-8")
    assert [line for line in lines if line not in source] == []


def test_load_chat_model_gives_the_bundled_model_as_a_langchain_chat_model(notes, llm):
    from core import load_chat_model

    default = load_chat_model()
    assert isinstance(default, BaseChatModel) and isinstance(default, LocalChatModel)
    assert default.loaded.spec.key == notes.settings.default_model and default.loaded.spec.source == "embedded"
    assert default.loaded.model is not None and default.loaded is llm.loaded  # loaded once, shared
    assert default.sampling_parameters()["max_new_tokens"] == 256  # the catalog's defaults
    tuned = load_chat_model(max_new_tokens=256, temperature=0.2)
    assert tuned.sampling_parameters()["temperature"] == 0.2 and tuned.max_new_tokens == 256
    assert load_chat_model(notes.settings.default_model).loaded is llm.loaded  # a catalog key


def test_the_bundled_chat_model_invokes_and_streams(llm, capsys):
    import torch

    print(llm.invoke("你是谁").content)
    said = capsys.readouterr().out
    assert said.strip() and said.endswith("\n")

    torch.manual_seed(0)  # the bundled model samples (temperature 0.2): the same seed, the same text
    pieces = []
    for chunk in llm.stream("Tell me a joke"):
        print(chunk.content, end="", flush=True)
        pieces.append(chunk.content)
    streamed = capsys.readouterr().out
    torch.manual_seed(0)
    assert len([p for p in pieces if p]) > 1 and streamed == "".join(pieces)
    assert streamed.strip() and llm.invoke("Tell me a joke").content == streamed


def test_a_knowledge_base_is_a_retriever(notes, capsys):
    from core import open_retriever

    retriever = open_retriever("课程笔记", k=4)  # a knowledge base's display name
    docs = retriever.invoke("lmdeploy 支持哪些量化方式？")
    print(docs[0].metadata["path"], docs[0].metadata["start_line"], docs[0].metadata["score"])
    path, line, score = capsys.readouterr().out.split()
    assert (path, line) == ("quantization.md", "1") and 0 < float(score) < 1
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True) and len(docs) <= 4
    assert retriever.invoke("Which port does the api_server listen on?")[0].metadata["path"] == "serving.md"


def test_a_retriever_over_an_unknown_knowledge_base_is_an_error(notes):
    with pytest.raises(KnowledgeBaseNotFound):
        core.open_retriever("no such notes")


def test_a_quick_answer_quotes_the_sources_with_citations(notes, capsys):
    from core import ask

    reply = ask("lmdeploy 支持哪些量化方式？", "课程笔记", mode="quick")  # quoted, no model
    print(reply.shown)  # > …AWQ… [1]
    shown = capsys.readouterr().out
    assert not reply.refused and shown.startswith("> ") and shown == reply.shown + "\n"
    assert "AWQ 4bit 权重量化" in reply.shown and "[1]" in reply.shown
    assert reply.sources[0].metadata["path"] == "quantization.md"


def test_an_off_topic_question_is_declined(notes):
    for question in ("What is the capital of France?", "红烧肉怎么做才好吃？"):
        reply = core.ask(question, "课程笔记", mode="quick")
        assert reply.refused and reply.text == "" and reply.sources == []


def test_the_bundled_model_writes_an_answer_with_checked_citations(llm, capsys):
    from core import ask

    reply = ask("lmdeploy 支持哪些量化方式？", "课程笔记", llm=llm)  # written by the model
    print(reply.refused, reply.shown)  # True when nothing in the knowledge base fits
    for number, doc in enumerate(reply.sources, 1):
        print(number, doc.metadata["path"], doc.metadata["score"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("False ") and reply.text.strip()
    number, path, score = printed[-len(reply.sources)].split()
    assert (number, path) == ("1", "quantization.md") and 0 < float(score) < 1
    # shown is the model's text with the app's checks: each matched sentence gets its *[n]*,
    # each sentence no source supports a *[?]*.
    attribution = reply.attribution
    assert attribution is not None and attribution.sentences and reply.shown == attributed_markdown(attribution)
    for sentence in attribution.sentences:
        if sentence.kind == "matched":
            assert all(f"*[{n}]*" in reply.shown for n in sentence.sources)
        elif sentence.kind == "unsupported":
            assert "*[?]*" in reply.shown


def test_a_written_answer_gets_its_citations_checked(notes):
    llm = GenericFakeChatModel(messages=iter([AIMessage("LMDeploy 支持 AWQ 4bit 权重量化 [5]。")]))
    reply = core.ask("lmdeploy 支持哪些量化方式？", "课程笔记", llm=llm)
    assert reply.text == "LMDeploy 支持 AWQ 4bit 权重量化 [5]。"
    assert "[5]" not in reply.shown and "*[1]*" in reply.shown
