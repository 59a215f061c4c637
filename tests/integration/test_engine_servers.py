"""Engine servers started from the app: real processes on loopback, with stand-ins that read each
engine's real command line (tests/stand_in_engine.py)."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import psutil
import pytest

from core.errors import EngineNotInstalled, ServerPortInUse
from core.models import remote, serving
from core.models.registry import ModelRegistry
from core.models.serving import Servers
from core.models.spec import ModelSpec
from tests import stand_in_engine
from tests.openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parents[2]
SPEC = ModelSpec(key="qwen2-7b-instruct", name="Qwen2-7B-Instruct", family="qwen2", source="hub", params_b=7.6)


@pytest.fixture
def engines(tmp_path, monkeypatch):
    """vLLM, LMDeploy and SGLang 'installed' beside the app, as stand-ins."""
    stand_in_engine.put_on_paths(tmp_path / "engines", monkeypatch)


@pytest.fixture
def model_folder(tmp_path):
    folder = tmp_path / "models" / "qwen2-7b-instruct"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "qwen2"}')
    return folder


@pytest.fixture
def servers(tmp_path):
    made = Servers(tmp_path / "data" / "servers", ModelRegistry(tmp_path / "data" / "custom_models.json"))
    yield made
    for server in made.all():
        if server.status in {"starting", "ready"}:
            made.stop(server.id, wait_s=2)


def _wait(servers: Servers, server_id: str, status: str, timeout: float = 30.0) -> serving.Server:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = servers.get(server_id)
        if server.status == status:
            return server
        time.sleep(0.1)
    raise AssertionError(f"{server.status} after {timeout} s; log:\n{servers.log_tail(server_id)}")


def test_each_engine_command_is_the_one_its_documentation_gives(engines, model_folder):
    by_key = {e.key: e for e in serving.installed()}
    assert set(by_key) == {"vllm", "lmdeploy", "sglang"}
    assert serving.command(by_key["vllm"], model_folder, "m", 8001, 0.9, 4096)[1:] == [
        *("-m", "vllm.entrypoints.openai.api_server", "--model", str(model_folder), "--host", "127.0.0.1"),
        *("--port", "8001", "--served-model-name", "m", "--gpu-memory-utilization", "0.9", "--max-model-len", "4096"),
    ]
    lmdeploy = serving.command(by_key["lmdeploy"], model_folder, "m", 8002, 0.5, 8192)
    assert lmdeploy[0].endswith("/lmdeploy") and lmdeploy[1:] == [
        *("serve", "api_server", str(model_folder), "--server-name", "127.0.0.1", "--server-port", "8002"),
        *("--model-name", "m", "--cache-max-entry-count", "0.5", "--session-len", "8192"),
    ]
    assert serving.command(by_key["sglang"], model_folder, "m", 8003, 0.8, 2048)[1:] == [
        *("-m", "sglang.launch_server", "--model-path", str(model_folder), "--host", "127.0.0.1", "--port", "8003"),
        *("--served-model-name", "m", "--mem-fraction-static", "0.8", "--context-length", "2048"),
    ]


@pytest.mark.parametrize("engine", ["vllm", "lmdeploy", "sglang"])
def test_a_started_engine_is_attached_answers_and_stops(engine, engines, model_folder, servers, tmp_path):
    port = serving.free_port()
    started = servers.start(engine, SPEC, model_folder, port, 0.9, 4096)
    assert started.status == "starting" and started.attached is None

    ready = _wait(servers, started.id, "ready")
    catalog = ModelRegistry(tmp_path / "data" / "custom_models.json")  # as another process reads it
    row = catalog.get(ready.attached)
    assert row.source == "remote" and row.base_url == f"http://127.0.0.1:{port}/v1"
    assert row.api_model == SPEC.key and row.name == f"Qwen2-7B-Instruct ({serving.engine(engine).name})"
    answer = remote.chat_model(row, {}).invoke("Hello?")
    assert answer.content == stand_in_engine.REPLY
    assert f"{engine} stand-in: serving on port {port}" in servers.log_tail(started.id)

    assert os.getsid(started.pid) == started.pid  # its own session: closing the app leaves it running
    worker = int(re.search(r"worker pid (\d+)", servers.log_tail(started.id)).group(1))

    # Another process (or the app after a restart) sees the same server and can stop it.
    again = Servers(tmp_path / "data" / "servers", catalog)
    stopped = again.stop(started.id, wait_s=5)
    assert stopped.status == "stopped"
    assert not psutil.pid_exists(started.pid) or _zombie(started.pid)
    assert not psutil.pid_exists(worker) or _zombie(worker)  # its workers ended with it
    assert ready.attached not in {s.key for s in catalog.all()}
    assert f"{engine} stand-in: stopped" in servers.log_tail(started.id)


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def test_an_engine_that_cannot_load_the_model_shows_why_and_is_not_attached(engines, tmp_path, servers):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    started = servers.start("vllm", SPEC, empty, serving.free_port(), 0.9, 4096)
    exited = _wait(servers, started.id, "exited")
    assert exited.exit_code == 1 and exited.attached is None
    assert "no config.json" in servers.log_tail(started.id)
    servers.forget(started.id)
    assert [s.id for s in servers.all()] == []


def test_a_port_in_use_and_a_missing_engine_are_clear_errors(engines, model_folder, servers, monkeypatch):
    with OpenAIServer() as busy:
        port = int(busy.address.rsplit(":", 1)[1])
        with pytest.raises(ServerPortInUse) as caught:
            servers.start("vllm", SPEC, model_folder, port, 0.9, 4096)
    assert str(port) in str(caught.value)
    monkeypatch.setattr(serving, "installed", lambda: [])
    with pytest.raises(EngineNotInstalled) as missing:
        servers.start("sglang", SPEC, model_folder, serving.free_port(), 0.9, 4096)
    assert "SGLang" in str(missing.value) and "docs.sglang.ai" in str(missing.value)
    assert servers.all() == []


def test_a_server_that_ends_while_it_is_looked_at_keeps_its_exit_code(servers, monkeypatch):
    """The server ends just after the app last collected children, before it looks at the
    process: it was shown as exited with no exit code.
    """
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit(3)"], stdin=subprocess.PIPE)
    server = serving.Server(
        id="ending",
        engine="vllm",
        model_key="m",
        model_name="m",
        port=1,
        pid=child.pid,
        created=psutil.Process(child.pid).create_time(),
        command=[],
    )
    real = psutil.Process

    class EndsNow(real):
        def __init__(self, pid):
            child.stdin.close()  # the server ends now
            deadline = time.monotonic() + 10
            while real(pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
                time.sleep(0.01)
            super().__init__(pid)

    monkeypatch.setattr(psutil, "Process", EndsNow)
    assert not serving._alive(server)
    assert server.exit_code == 3
    child.returncode = 3  # collected above, not by Popen
