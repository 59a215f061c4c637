"""The HTTP API as its users call it: ``python -m core.api`` on loopback, with the ``openai`` client
(chat completions whose model is a knowledge base, streaming included) and plain JSON; API keys
and permissions with logins on; and an ingestion that meets the app's lock."""

from __future__ import annotations

import anyio
import httpx
import httpx2
import openai
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from core.api.keys import ApiKeys
from core.knowledge.splitting import SplitterSettings
from core.locks import Locks
from core.models.custom import row_for_endpoint
from core.services import build_services
from core.settings import Settings
from tests.api_servers import KB, KB_ZH, ServerProcess, data_folder, free_port, server_env
from tests.openai_server import OpenAIServer

REPLY = "Boil the pasta for ten minutes [1]."
PASTA = [{"role": "user", "content": "How long should pasta boil?"}]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return data_folder(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def model_server():
    with OpenAIServer(model="served-model", reply=REPLY) as server:
        yield server


@pytest.fixture(scope="module")
def api(data_dir, model_server):
    # The chat model is a model server added to the catalog, as on the Models page.
    services = build_services(Settings(data_dir=data_dir))
    row = row_for_endpoint(model_server.base_url, model_server.model, "Served model")
    services.catalog.add(row)
    port = free_port()
    args = ["--port", str(port), "--model", row.key, "--allow-ingest", "--lock-wait", "1"]
    with ServerProcess("core.api", args, port, server_env(data_dir), "/health") as server:
        yield server


@pytest.fixture
def client(api):
    return openai.OpenAI(base_url=api.url + "/v1", api_key="unused", max_retries=0)


def test_models_are_the_knowledge_bases(client):
    assert {m.id for m in client.models.list()} >= {KB, KB_ZH}


def test_a_chat_completion_answers_from_the_knowledge_base_with_its_sources(client, model_server):
    reply = client.chat.completions.create(
        model=KB, messages=[{"role": "user", "content": "How long should pasta boil?"}]
    )
    text = reply.choices[0].message.content
    assert text.startswith(REPLY) and "Sources:\n[1] pasta.md:1-3 (Pasta)" in text
    extra = reply.model_extra
    assert extra["answered_by"] == "model" and "Served model" in extra["note"]
    assert extra["sources"][0]["path"] == "pasta.md" and extra["sources"][0]["number"] == 1
    # The model server got the app's prompt, with the passage as a numbered source.
    prompt = model_server.requests[-1]["messages"]
    assert prompt[0]["role"] == "system" and "ten minutes" in prompt[-1]["content"]


def test_a_streamed_chat_completion_sends_the_answer_in_pieces_then_the_sources(client):
    stream = client.chat.completions.create(
        model=KB, messages=[{"role": "user", "content": "How long should pasta boil?"}], stream=True
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert len(pieces) > 2 and "".join(pieces).startswith(REPLY)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and "[1] pasta.md:1-3" in pieces[-1]
    assert last.model_extra["sources"][0]["path"] == "pasta.md"


def test_quick_answers_need_no_model_and_say_so(client):
    reply = client.chat.completions.create(
        model=KB, messages=[{"role": "user", "content": "How long should pasta boil?"}], extra_body={"mode": "quick"}
    )
    assert reply.model_extra["answered_by"] == "quick"
    assert "> Boil the pasta for ten minutes" in reply.choices[0].message.content


def test_unknown_knowledge_bases_and_bad_arguments_are_4xx_with_a_message(client, api):
    with pytest.raises(openai.NotFoundError, match="'no such base' does not exist"):
        client.chat.completions.create(model="no such base", messages=[{"role": "user", "content": "pasta?"}])
    with pytest.raises(openai.BadRequestError, match="k: Input should be greater than or equal to 1"):
        client.chat.completions.create(model=KB, messages=[{"role": "user", "content": "pasta?"}], extra_body={"k": 0})
    with pytest.raises(openai.BadRequestError, match="the last message must be the user's question"):
        client.chat.completions.create(model=KB, messages=[{"role": "assistant", "content": "hello"}])

    missing = httpx.post(api.url + "/v1/search", json={"query": "pasta", "knowledge_bases": ["no such base"]})
    assert missing.status_code == 404 and "does not exist" in missing.json()["error"]["message"]
    bad = httpx.post(api.url + "/v1/search", json={"query": "pasta", "mode": "fuzzy"})
    assert bad.status_code == 400 and "mode" in bad.json()["error"]["message"]


def test_search_and_answer_as_json(api):
    found = httpx.post(api.url + "/v1/search", json={"query": "Which GPUs does the server use?", "k": 1}).json()
    best = found["passages"][0]
    assert best["path"] == "gpus.md" and best["heading"] == "Hardware" and best["start_line"] == 1
    assert set(found["knowledge_bases"]) >= {KB, KB_ZH}  # every knowledge base when none is named

    answered = httpx.post(
        api.url + "/v1/answer", json={"question": "How long should pasta boil?", "knowledge_bases": [KB]}, timeout=30
    ).json()
    assert answered["answered_by"] == "model" and answered["answer"].startswith(REPLY)
    files = httpx.get(f"{api.url}/v1/knowledge-bases/{KB_ZH}/files").json()
    assert [f["path"] for f in files["files"]] == ["gpus.md"]


def test_openapi_documents_every_operation(api):
    paths = httpx.get(api.url + "/openapi.json").json()["paths"]
    assert {"/v1/search", "/v1/answer", "/v1/chat/completions", "/v1/models", "/v1/knowledge-bases"} <= set(paths)
    assert httpx.get(api.url + "/docs").status_code == 200


def test_mcp_is_served_beside_the_api(api):
    async def check():
        async with Client(api.url + "/mcp") as mcp:
            found = await mcp.call_tool("search", {"query": "How long should pasta boil?", "knowledge_bases": [KB]})
            assert found.structured_content["passages"][0]["path"] == "pasta.md"

    anyio.run(check)


def test_a_refresh_while_the_app_writes_fails_clearly_after_the_lock_wait(api, data_dir):
    kb = build_services(Settings(data_dir=data_dir)).knowledge.get(KB)
    lock = Locks(data_dir).kb(kb.id)
    with lock:
        refreshed = httpx.post(f"{api.url}/v1/knowledge-bases/{KB}/refresh", json={"wait_seconds": 30}, timeout=60)
    job = refreshed.json()["jobs"][0]
    assert job["status"] == "failed" and f"Knowledge base '{KB}' is being changed by another job" in job["error"]
    # Once the lock is free the same refresh goes through.
    again = httpx.post(f"{api.url}/v1/knowledge-bases/{KB}/refresh", json={"wait_seconds": 60}, timeout=90).json()
    assert again["jobs"][0]["status"] == "done"


@pytest.fixture(scope="module")
def logins(data_dir):
    """A second server over the same data folder with logins on, and keys for alice and bob."""
    services = build_services(Settings(data_dir=data_dir))
    services.knowledge.create("alice's notes", "all-minilm-l6-v2", SplitterSettings(), owner="alice", sharing="private")
    keys = ApiKeys(data_dir)
    _, alice = keys.add("alice")
    _, bob = keys.add("bob")
    port = free_port()
    env = server_env(data_dir, KBA_AUTH="users")
    with ServerProcess("core.api", ["--port", str(port)], port, env, "/health") as server:
        yield server, alice, bob


def test_with_logins_on_a_key_is_needed_and_each_user_sees_their_own(logins):
    server, alice, bob = logins
    with pytest.raises(openai.AuthenticationError, match="A valid API key is needed"):
        openai.OpenAI(base_url=server.url + "/v1", api_key="kba-wrong", max_retries=0).models.list()
    assert httpx.get(server.url + "/v1/knowledge-bases").status_code == 401
    assert httpx.get(server.url + "/docs").status_code == 200  # the documentation shows no data

    def names(key):
        return {m.id for m in openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0).models.list()}

    assert "alice's notes" in names(alice)
    assert "alice's notes" not in names(bob) and KB in names(bob)  # made with logins off: shared
    refused = httpx.post(
        server.url + "/v1/search",
        json={"query": "notes", "knowledge_bases": ["alice's notes"]},
        headers={"Authorization": f"Bearer {bob}"},
    )
    assert refused.status_code == 403

    anonymous = httpx.post(server.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert anonymous.status_code == 401 and "API key" in anonymous.json()["error"]["message"]

    async def check():
        async with Client(streamable_http_client(server.url + "/mcp")) as mcp:
            await mcp.list_tools()

    with pytest.raises(ExceptionGroup):  # the SDK client gives up on the 401 (with a message of its own)
        anyio.run(check)

    async def as_alice():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {alice}"})
        async with Client(streamable_http_client(server.url + "/mcp", http_client=http)) as mcp:
            listed = (await mcp.call_tool("list_knowledge_bases", {})).structured_content["knowledge_bases"]
            assert "alice's notes" in {kb["name"] for kb in listed}

    anyio.run(as_alice)
