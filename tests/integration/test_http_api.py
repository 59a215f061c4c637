"""The HTTP API as its users call it: ``python -m core.api`` on loopback, with the ``openai`` client
(chat completions whose model is a knowledge base, streaming included) and plain JSON; API keys
and permissions with logins on; and an ingestion that meets the app's lock."""

from __future__ import annotations

import socket
import time

import anyio
import httpx
import httpx2
import openai
import psutil
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


@pytest.fixture(scope="module")
def bare(data_dir):
    """A server as started by hand without a chat model: ``--allow-ingest``, no ``--lock-wait``, no
    ``--host``; new knowledge bases get the small English embedding model, so ingestion is quick."""
    port = free_port()
    env = server_env(data_dir, KBA_DEFAULT_EMBEDDING="all-minilm-l6-v2")
    with ServerProcess("core.api", ["--port", str(port), "--allow-ingest"], port, env, "/health") as server:
        yield server


def _error(response: httpx.Response, status: int, code: str) -> str:
    """The message of an error response, after checking its status and OpenAI-style body."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return error["message"]


def _job_until_done(server: ServerProcess, job_id: str, timeout: float = 90) -> dict:
    """``GET /v1/jobs/{id}`` until the job has ended (or ``timeout`` passes); its last state."""
    deadline = time.monotonic() + timeout
    while True:
        state = httpx.get(f"{server.url}/v1/jobs/{job_id}", params={"wait_seconds": 5}, timeout=30).json()
        if state["status"] in {"done", "failed", "cancelled"} or time.monotonic() > deadline:
            return state


def test_the_first_curl_example_lists_the_knowledge_bases(api):
    listed = httpx.get(api.url + "/v1/knowledge-bases")
    assert listed.status_code == 200
    rows = {kb["name"]: kb for kb in listed.json()["knowledge_bases"]}
    assert {KB, KB_ZH} <= set(rows)
    assert rows[KB_ZH]["files"] == 1 and rows[KB_ZH]["chunks"] >= 1
    assert rows[KB_ZH]["embedding"] == "all-minilm-l6-v2" and rows[KB_ZH]["sources"][0]["kind"] == "folder"


def test_a_written_answer_without_a_chat_model_is_409_no_model(bare):
    asked = httpx.post(
        bare.url + "/v1/answer",
        json={"question": "How long should pasta boil?", "knowledge_bases": [KB], "mode": "generate"},
        timeout=30,
    )
    assert "needs a chat model" in _error(asked, 409, "no_model")
    assert asked.json()["error"]["type"] == "conflict_error"
    client = openai.OpenAI(base_url=bare.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.ConflictError, match="--model KEY"):
        client.chat.completions.create(model=KB, messages=PASTA, extra_body={"mode": "generate"})
    # Without "generate" the same server quotes the sources instead (auto), so the 409 is about the mode.
    quoted = httpx.post(bare.url + "/v1/answer", json={"question": "How long should pasta boil?"}, timeout=30)
    assert quoted.status_code == 200 and quoted.json()["answered_by"] == "quick"


def test_a_second_job_on_a_busy_knowledge_base_is_409_busy_and_the_first_finishes(bare, data_dir):
    kb = build_services(Settings(data_dir=data_dir)).knowledge.get(KB)
    lock = Locks(data_dir).kb(kb.id)  # as the app's ingestion holds it while it writes
    with lock:
        started = httpx.post(f"{bare.url}/v1/knowledge-bases/{KB}/refresh", json={"wait_seconds": 1}, timeout=30)
        job = started.json()["jobs"][0]
        assert job["status"] == "waiting" and f"writing to knowledge base '{KB}'" in job["message"]
        again = httpx.post(f"{bare.url}/v1/knowledge-bases/{KB}/refresh", json={"wait_seconds": 0}, timeout=30)
        assert "already busy" in _error(again, 409, "busy")
        assert again.json()["error"]["type"] == "conflict_error"
        assert httpx.get(f"{bare.url}/v1/jobs/{job['job_id']}").json()["status"] == "waiting"
    done = _job_until_done(bare, job["job_id"])
    assert done["status"] == "done" and done["result"]["files_unchanged"] == 3


def test_adding_a_folder_over_http_runs_a_job_whose_status_is_polled_until_done(bare, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "tea.md").write_text("# Tea\n\nGreen tea steeps for two minutes at 80 degrees.\n", encoding="utf-8")
    url = f"{bare.url}/v1/knowledge-bases/tea/folders"

    missing = httpx.post(url, json={"path": str(folder)}, timeout=30)
    assert "'tea' does not exist" in _error(missing, 404, "not_found")

    added = httpx.post(url, json={"path": str(folder), "create": True, "wait_seconds": 0}, timeout=30)
    assert added.status_code == 200, added.text
    job = added.json()["jobs"][0]
    assert job["kind"] and job["job_id"] and job["knowledge_base"]
    done = _job_until_done(bare, job["job_id"])
    assert done["status"] == "done", done
    assert done["result"]["files_ingested"] == 1 and done["result"]["skipped"] == 0

    found = httpx.post(
        bare.url + "/v1/search", json={"query": "How long does green tea steep?", "knowledge_bases": ["tea"]}
    ).json()
    assert found["passages"][0]["path"] == "tea.md"
    assert "tea" in {kb["name"] for kb in httpx.get(bare.url + "/v1/knowledge-bases").json()["knowledge_bases"]}

    unknown = httpx.get(f"{bare.url}/v1/jobs/no-such-job")
    assert "There is no job 'no-such-job'" in _error(unknown, 404, "not_found")


def test_folders_and_jobs_are_offered_only_when_ingestion_is_allowed(api, logins, tmp_path):
    ingest = {"/v1/knowledge-bases/{name}/folders", "/v1/jobs/{job_id}"}
    assert ingest <= set(httpx.get(api.url + "/openapi.json").json()["paths"])
    server, alice, _ = logins  # started without --allow-ingest
    assert not ingest & set(httpx.get(server.url + "/openapi.json").json()["paths"])
    headers = {"Authorization": f"Bearer {alice}"}
    refused = httpx.post(
        f"{server.url}/v1/knowledge-bases/never/folders",
        json={"path": str(tmp_path), "create": True, "wait_seconds": 5},
        headers=headers,
        timeout=30,
    )
    assert refused.status_code in {404, 405}
    listed = httpx.get(server.url + "/v1/knowledge-bases", headers=headers).json()["knowledge_bases"]
    assert "never" not in {kb["name"] for kb in listed}
    assert httpx.get(f"{server.url}/v1/jobs/any", headers=headers).status_code == 404


def test_the_streamed_last_chunk_carries_the_checked_answer(client, model_server):
    unsupported = "The moon is made of green cheese."
    model_server.reply = f"{REPLY} {unsupported}"
    try:
        chunks = list(client.chat.completions.create(model=KB, messages=PASTA, stream=True))
    finally:
        model_server.reply = REPLY
    said = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert said.startswith(f"{REPLY} {unsupported}")  # the model's own words, streamed unchecked
    assert "*[?]*" not in said
    # The last chunk carries the answer as the app checked it: the cited sentence kept with its [1],
    # the sentence no source supports flagged *[?]*.
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["answer"] == f"{REPLY} {unsupported} *[?]*"
    assert last.model_extra["answered_by"] == "model" and last.model_extra["sources"][0]["number"] == 1
    assert all("answer" not in c.model_extra for c in chunks[:-1])


def _non_loopback_ipv4() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_the_api_listens_on_loopback_only_by_default(api):
    port = int(api.url.rsplit(":", 1)[1])
    listening = [
        c.laddr for c in psutil.Process(api.process.pid).net_connections("inet") if c.status == psutil.CONN_LISTEN
    ]
    assert listening and {address.ip for address in listening} == {"127.0.0.1"}
    assert {address.port for address in listening} == {port}
    other = _non_loopback_ipv4()
    if other is None:
        pytest.skip("this machine has no non-loopback IPv4 address to try")
    with pytest.raises(OSError), socket.create_connection((other, port), timeout=5):
        pass
