"""The MCP server as MCP clients use it: the SDK's own client starts ``python -m core.mcp`` over stdio
(as Claude Desktop does, from another folder) or talks to it over streamable HTTP, against knowledge
bases the app's ingestion built; and an ingestion through MCP meets the app's lock."""

from __future__ import annotations

import json
import subprocess
import sys

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from core.api.keys import ApiKeys
from core.api.operations import files_uri
from core.knowledge.splitting import SplitterSettings
from core.locks import Locks
from core.services import build_services
from core.settings import Settings
from tests.api_servers import KB, KB_ZH, ROOT, ServerProcess, data_folder, free_port, server_env


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return data_folder(tmp_path_factory.mktemp("mcp"))


@pytest.fixture(scope="module")
def http_server(data_dir):
    port = free_port()
    # HEAD /mcp answers (405) once the server listens.
    with ServerProcess("core.mcp", ["--http", str(port), "--allow-ingest"], port, server_env(data_dir), "/mcp") as s:
        yield s


def run(check) -> None:
    anyio.run(check)


def stdio(data_dir, tmp_path, **extra: str) -> StdioServerParameters:
    """The server the way a desktop client's config starts it: the project on PYTHONPATH, the
    app's data folder in KBA_DATA_DIR (and ``extra`` variables), started in some other folder."""
    env = {"KBA_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.update(extra)
    return StdioServerParameters(command=sys.executable, args=["-m", "core.mcp"], env=env, cwd=str(tmp_path))


async def _lists_searches_and_answers(client: Client) -> None:
    listed = (await client.call_tool("list_knowledge_bases", {})).structured_content["knowledge_bases"]
    assert {KB, KB_ZH} <= {kb["name"] for kb in listed}
    cooking = next(kb for kb in listed if kb["name"] == KB)
    assert cooking["files"] == 3 and cooking["embedding"] == "all-minilm-l6-v2"

    found = await client.call_tool("search", {"query": "How long should pasta boil?", "knowledge_bases": [KB], "k": 2})
    assert not found.is_error
    best = found.structured_content["passages"][0]
    assert (best["path"], best["start_line"], best["end_line"], best["heading"]) == ("pasta.md", 1, 3, "Pasta")
    assert 0 < best["relevance"] < 1 and best["link"].startswith("file://") and best["link"].endswith("pasta.md")
    assert "page" in best and "ten minutes" in best["text"]
    # The text content (what a model reads) carries the same passages.
    assert json.loads(found.content[0].text)["passages"][0]["path"] == "pasta.md"

    answered = (await client.call_tool("answer", {"question": "How long should pasta boil?"})).structured_content
    # No chat model in this server: the pipeline's quick answer, quoted from the source, and said so.
    assert answered["answered_by"] == "quick" and "no chat model" in answered["note"]
    assert "ten minutes" in answered["answer"] and "[1]" in answered["answer"]
    assert answered["sources"][0]["path"] == "pasta.md"

    off_topic = (await client.call_tool("answer", {"question": "Who won the 1998 World Cup final?"})).structured_content
    assert off_topic["refused"] and off_topic["sources"] == []

    files = await client.read_resource(files_uri(KB_ZH))
    assert [f["path"] for f in json.loads(files.contents[0].text)["files"]] == ["gpus.md"]


async def _errors(client: Client) -> None:
    unknown = await client.call_tool("search", {"query": "pasta", "knowledge_bases": ["no such base"]})
    assert unknown.is_error and "'no such base' does not exist" in unknown.content[0].text
    unknown = await client.call_tool("answer", {"question": "pasta?", "knowledge_bases": ["no such base"]})
    assert unknown.is_error and "does not exist" in unknown.content[0].text
    bad_k = await client.call_tool("search", {"query": "pasta", "k": 0})
    assert bad_k.is_error and "greater than or equal to 1" in bad_k.content[0].text
    bad_mode = await client.call_tool("search", {"query": "pasta", "mode": "fuzzy"})
    assert bad_mode.is_error and "mode" in bad_mode.content[0].text
    no_query = await client.call_tool("search", {})
    assert no_query.is_error and "query" in no_query.content[0].text
    with pytest.raises(MCPError, match="does not exist"):
        await client.read_resource(files_uri("no such base"))


def test_stdio_lists_searches_answers_and_reports_errors(data_dir, tmp_path):
    async def check():
        async with Client(stdio(data_dir, tmp_path)) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == {"list_knowledge_bases", "search", "answer"}  # read-only without --allow-ingest
            await _lists_searches_and_answers(client)
            await _errors(client)

    run(check)


def test_http_lists_searches_answers_and_reports_errors(http_server):
    async def check():
        async with Client(http_server.url + "/mcp") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"add_folder", "refresh", "job_status"} <= names
            await _lists_searches_and_answers(client)
            await _errors(client)

    run(check)


def test_a_refresh_waits_while_the_app_holds_the_knowledge_base_and_then_finishes(http_server, data_dir):
    kb = build_services(Settings(data_dir=data_dir)).knowledge.get(KB)
    lock = Locks(data_dir).kb(kb.id)  # the lock the app's ingestion job holds while it writes

    async def check():
        async with Client(http_server.url + "/mcp") as client:
            lock.acquire()
            try:
                started = await client.call_tool("refresh", {"knowledge_base": KB, "wait_seconds": 2})
                job = started.structured_content["jobs"][0]
                assert job["status"] == "waiting" and f"writing to knowledge base '{KB}'" in job["message"]
                again = await client.call_tool("refresh", {"knowledge_base": KB, "wait_seconds": 0})
                assert again.is_error and "already busy" in again.content[0].text
            finally:
                lock.release()
            done = await client.call_tool("job_status", {"job_id": job["job_id"], "wait_seconds": 60})
            result = done.structured_content
            assert result["status"] == "done" and result["result"]["files_unchanged"] == 3
            assert result["result"]["chunks_added"] == 0  # nothing embedded twice

    run(check)


def test_add_folder_creates_a_knowledge_base_through_the_apps_ingestion(http_server, data_dir, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "tea.md").write_text("# Tea\n\nGreen tea steeps for two minutes at 80 degrees.\n", encoding="utf-8")

    async def check():
        async with Client(http_server.url + "/mcp") as client:
            missing = await client.call_tool("add_folder", {"knowledge_base": "tea", "path": str(folder)})
            assert missing.is_error and "does not exist" in missing.content[0].text
            added = await client.call_tool(
                "add_folder", {"knowledge_base": "tea", "path": str(folder), "create": True, "wait_seconds": 120}
            )
            job = added.structured_content["jobs"][0]
            assert job["status"] == "done" and job["result"]["files_ingested"] == 1
            found = await client.call_tool(
                "search", {"query": "How long does green tea steep?", "knowledge_bases": ["tea"]}
            )
            assert found.structured_content["passages"][0]["path"] == "tea.md"
            nowhere = await client.call_tool(
                "add_folder", {"knowledge_base": "tea", "path": str(tmp_path / "absent"), "wait_seconds": 5}
            )
            assert nowhere.is_error and "is not a folder" in nowhere.content[0].text

    run(check)
    # The app sees what the MCP server added.
    assert build_services(Settings(data_dir=data_dir)).knowledge.get("tea")


@pytest.fixture(scope="module")
def logins_dir(tmp_path_factory):
    """A data folder of its own, for servers with logins on: keys for alice and bob, and a
    knowledge base only alice may read."""
    data_dir = data_folder(tmp_path_factory.mktemp("mcp-logins"))
    services = build_services(Settings(data_dir=data_dir))
    services.knowledge.create("alice's notes", "all-minilm-l6-v2", SplitterSettings(), owner="alice", sharing="private")
    keys = ApiKeys(data_dir)
    return data_dir, keys.add("alice")[1], keys.add("bob")[1]


async def _names(client: Client) -> set[str]:
    listed = await client.call_tool("list_knowledge_bases", {})
    assert not listed.is_error, listed.content
    return {kb["name"] for kb in listed.structured_content["knowledge_bases"]}


def test_stdio_with_logins_on_acts_as_the_user_of_the_key_in_kba_api_key(logins_dir, tmp_path):
    data_dir, alice, bob = logins_dir

    async def check():
        async with Client(stdio(data_dir, tmp_path, KBA_AUTH="users", KBA_API_KEY=alice)) as client:
            assert {KB, KB_ZH, "alice's notes"} <= await _names(client)
        async with Client(stdio(data_dir, tmp_path, KBA_AUTH="users", KBA_API_KEY=bob)) as client:
            names = await _names(client)
            assert KB in names and "alice's notes" not in names

    run(check)


@pytest.mark.parametrize("key", [None, "kba-wrong"])
def test_stdio_with_logins_on_and_no_valid_key_exits_saying_where_the_key_goes(logins_dir, tmp_path, key):
    data_dir, _, _ = logins_dir
    params = stdio(data_dir, tmp_path, KBA_AUTH="users", **({"KBA_API_KEY": key} if key else {}))
    finished = subprocess.run(
        [params.command, *params.args],
        env=params.env,
        cwd=params.cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2 and finished.stdout == ""  # nothing on the MCP stream
    assert "error: A valid API key is needed: logins are on (KBA_AUTH=users)" in finished.stderr
    assert "put the key in the environment variable KBA_API_KEY" in finished.stderr


def test_standalone_http_with_logins_on_answers_401_without_a_key(logins_dir):
    data_dir, alice, _ = logins_dir
    port = free_port()
    env = server_env(data_dir, KBA_AUTH="users")
    with ServerProcess("core.mcp", ["--http", str(port)], port, env, "/mcp") as server:
        anonymous = httpx.post(server.url + "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
        assert "A valid API key is needed" in anonymous.json()["error"]["message"]
        wrong = httpx.post(
            server.url + "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": "Bearer kba-wrong"},
        )
        assert wrong.status_code == 401

        async def as_alice():
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {alice}"})
            async with Client(streamable_http_client(server.url + "/mcp", http_client=http)) as client:
                assert "alice's notes" in await _names(client)

        run(as_alice)
