"""The MCP tools and the operations behind them, in process (the SDK's in-memory client), over a
knowledge base of bag-of-words test embeddings: who answers and why, errors, permissions."""

from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client

from core.api import chat_completions, operations
from core.knowledge.splitting import SplitterSettings
from core.mcp.server import build_server
from core.services import build_services
from core.settings import Settings
from core.users import User
from tests.fakes import HASH_ROW, HashEmbeddings, hash_knowledge_base

FILES = {
    "pasta.md": "# Pasta\n\nBoil the pasta for ten minutes, then add the tomato sauce.\n",
    "gpus.md": "# Hardware\n\nThe server runs on two GPUs with 80 GB memory each.\n",
}
PASTA = "Boil the pasta for ten minutes, then add the tomato sauce?"


def _services(tmp_path, **settings):
    embeddings = HashEmbeddings()
    services = build_services(
        Settings(data_dir=tmp_path / "data", **settings), embedding_builder=lambda spec, batch, folder: embeddings
    )
    hash_knowledge_base(services.knowledge, tmp_path / "docs", FILES, "kitchen")
    return services


@pytest.fixture
def services(tmp_path):
    return _services(tmp_path)


def call(server, tool, arguments):
    async def go():
        async with Client(server) as client:
            return await client.call_tool(tool, arguments)

    return anyio.run(go)


def test_search_returns_passages_with_place_relevance_and_link(services, tmp_path):
    found = call(build_server(services), "search", {"query": PASTA, "k": 1})
    passage = found.structured_content["passages"][0]
    assert passage["path"] == "pasta.md" and (passage["start_line"], passage["end_line"]) == (1, 3)
    assert passage["heading"] == "Pasta" and passage["citation"] == "pasta.md:1-3"
    assert passage["link"] == (tmp_path / "docs" / "pasta.md").as_uri() and 0 < passage["relevance"] < 1
    assert passage["page"] is None  # no page numbers in Markdown


def test_without_a_model_the_answer_is_quoted_from_the_sources_and_says_why(services):
    answered = call(build_server(services), "answer", {"question": PASTA}).structured_content
    assert answered["answered_by"] == "quick" and answered["model"] is None
    assert "no chat model is loaded" in answered["note"]
    assert answered["answer"].startswith("> Boil the pasta") and answered["answer"].endswith("[1]")
    assert [s["path"] for s in answered["sources"]] == ["pasta.md"]


def test_the_demo_model_does_not_write_unless_asked_as_on_the_chat_page(tmp_path):
    services = _services(tmp_path, llm_backend="fake")
    services.models.load("smollm2-135m-instruct")  # the bundled demo model (a canned one here)
    auto = operations.answer(services, PASTA, ["kitchen"])
    assert auto["answered_by"] == "quick" and "only a demo model" in auto["note"]
    written = operations.answer(services, PASTA, ["kitchen"], mode="generate")
    assert written["answered_by"] == "model" and written["model"].startswith("SmolLM2-135M")
    assert written["text"].startswith("This is a canned answer") and "[1]" in written["answer"]


def test_a_written_answer_without_a_model_is_refused_with_what_to_do(services):
    result = call(build_server(services), "answer", {"question": PASTA, "mode": "generate"})
    assert result.is_error and "--model KEY" in result.content[0].text


def test_nothing_relevant_is_refused_in_the_questions_language(services):
    answered = operations.answer(services, "巴黎是哪个国家的首都？", ["kitchen"])
    assert answered["refused"] and answered["answered_by"] == "refused" and answered["sources"] == []
    assert answered["answer"] == operations.NO_MATCH["zh"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"query": PASTA, "knowledge_bases": ["nope"]}, "Knowledge base 'nope' does not exist"),
        ({"query": PASTA, "k": 51}, "less than or equal to 50"),
        ({"query": PASTA, "mode": "fuzzy"}, "mode"),
        ({"query": ""}, "at least 1 character"),
    ],
)
def test_bad_search_arguments_are_tool_errors_that_say_what_is_wrong(services, arguments, message):
    result = call(build_server(services), "search", arguments)
    assert result.is_error and message in result.content[0].text


def test_operations_check_their_arguments_too(services):
    # The HTTP API validates its bodies itself; these guard every other caller of the operations.
    with pytest.raises(operations.InvalidArgument, match="'k'"):
        operations.search(services, "pasta", None, k=0)
    with pytest.raises(operations.InvalidArgument, match="'mode'"):
        operations.search(services, "pasta", None, mode="fuzzy")
    with pytest.raises(operations.InvalidArgument, match="'question'"):
        operations.answer(services, "   ", None)


def test_ingestion_tools_are_offered_only_when_allowed(services):
    async def names(server):
        async with Client(server) as client:
            return {tool.name for tool in (await client.list_tools()).tools}

    assert anyio.run(names, build_server(services)) == {"list_knowledge_bases", "search", "answer"}
    assert {"add_folder", "refresh", "job_status"} <= anyio.run(names, build_server(services, allow_ingest=True))


def test_each_caller_sees_only_the_knowledge_bases_they_may_read(services):
    services.knowledge.embeddings.registry.add(HASH_ROW)
    services.knowledge.create("alice's", HASH_ROW.key, SplitterSettings(), owner="alice", sharing="private")
    listed = call(build_server(services, user=User("bob")), "list_knowledge_bases", {}).structured_content
    assert [kb["name"] for kb in listed["knowledge_bases"]] == ["kitchen"]
    refused = call(build_server(services, user=User("bob")), "search", {"query": "x", "knowledge_bases": ["alice's"]})
    assert refused.is_error and "alice's" in refused.content[0].text
    mine = call(build_server(services, user=User("alice")), "list_knowledge_bases", {}).structured_content
    assert {kb["name"] for kb in mine["knowledge_bases"]} == {"kitchen", "alice's"}


def test_the_file_list_resource_names_each_file(services):
    async def read():
        async with Client(build_server(services)) as client:
            return await client.read_resource(operations.files_uri("kitchen"))

    listed = json.loads(anyio.run(read).contents[0].text)
    assert [(f["path"], f["chunks"]) for f in listed["files"]] == [("gpus.md", 1), ("pasta.md", 1)]


def test_a_streamed_chat_completion_is_openais_event_stream_with_the_sources_last(services):
    request = chat_completions.ChatRequest(
        model="kitchen",
        messages=[
            {"role": "system", "content": "ignored: the pipeline has its own prompt"},
            {"role": "user", "content": "Tell me about pasta"},
            {"role": "assistant", "content": "Pasta is boiled."},
            {"role": "user", "content": [{"type": "text", "text": PASTA}]},
        ],
        mode="quick",
    )
    prepared = chat_completions.prepare(services, request)
    events = list(chat_completions.chunks(prepared, "kitchen"))
    assert events[-1] == "data: [DONE]\n\n" and all(e.startswith("data: ") and e.endswith("\n\n") for e in events)
    bodies = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert bodies[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {b["object"] for b in bodies} == {"chat.completion.chunk"} and len({b["id"] for b in bodies}) == 1
    text = "".join(b["choices"][0]["delta"].get("content", "") for b in bodies)
    assert text.startswith("> Boil the pasta") and text.endswith("Sources:\n[1] pasta.md:1-3 (Pasta)")
    assert bodies[-1]["choices"][0]["finish_reason"] == "stop" and bodies[-1]["sources"][0]["path"] == "pasta.md"
