"""Serve a downloaded catalog model with an inference engine (vLLM, LMDeploy, SGLang) installed
beside the app, and attach the server to the catalog as an OpenAI-compatible model.

The app generates one answer at a time; an engine serves many users at once (continuous
batching). Each server is a process in a session of its own, so it outlives the page run that
started it and the app itself: its state is a JSON file in ``<data>/servers/`` and its output
a log file beside it, so any page run, another process or the app after a restart sees it,
shows its log and health, and can stop it. Servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import requests

from core.errors import EngineNotInstalled, ServerPortInUse, UnknownServer
from core.models.custom import row_for_endpoint
from core.models.registry import ModelRegistry
from core.models.spec import ModelSpec

HOST = "127.0.0.1"
STOP_WAIT_S = 15.0  # after SIGTERM, before SIGKILL: engines free GPU memory on a clean exit


@dataclasses.dataclass(frozen=True)
class Engine:
    """One inference engine: how to find it and how its server is started.

    ``argv`` is the command after the program, with ``{model}``, ``{port}``, ``{name}`` (the
    model name the server answers to), ``{gpu}`` (share of GPU memory) and ``{context}``
    (tokens) filled in. ``program`` is a module run with this Python (``-m``), or, starting with
    ``script:``, a console script installed with the engine.
    """

    key: str
    name: str
    package: str
    program: str
    argv: tuple[str, ...]
    health: str  # a path that answers 200 once the model is loaded
    docs: str


ENGINES: tuple[Engine, ...] = (
    Engine(
        "vllm",
        "vLLM",
        "vllm",
        "vllm.entrypoints.openai.api_server",
        ("--model", "{model}", "--host", HOST, "--port", "{port}", "--served-model-name", "{name}",
         "--gpu-memory-utilization", "{gpu}", "--max-model-len", "{context}"),
        "/health",
        "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
    ),
    Engine(
        "lmdeploy",
        "LMDeploy",
        "lmdeploy",
        "script:lmdeploy",
        ("serve", "api_server", "{model}", "--server-name", HOST, "--server-port", "{port}", "--model-name",
         "{name}", "--cache-max-entry-count", "{gpu}", "--session-len", "{context}"),
        "/v1/models",
        "https://lmdeploy.readthedocs.io/en/latest/llm/api_server.html",
    ),
    Engine(
        "sglang",
        "SGLang",
        "sglang",
        "sglang.launch_server",
        ("--model-path", "{model}", "--host", HOST, "--port", "{port}", "--served-model-name", "{name}",
         "--mem-fraction-static", "{gpu}", "--context-length", "{context}"),
        "/health",
        "https://docs.sglang.ai/basic_usage/openai_api.html",
    ),
)  # fmt: skip


@dataclasses.dataclass
class Server:
    """A server started by the app. ``status``: "starting", "ready", "exited" or "stopped"."""

    id: str
    engine: str
    model_key: str  # also the name the server answers to
    model_name: str
    port: int
    pid: int
    created: float  # the process's start time, so a reused pid is never taken for it
    command: list[str]
    status: str = "starting"
    exit_code: int | None = None
    attached: str | None = None  # the catalog row made for it

    @property
    def base_url(self) -> str:
        """Where its OpenAI-compatible API answers."""
        return f"http://{HOST}:{self.port}/v1"


def engine(key: str) -> Engine:
    """The engine row ``key``."""
    for row in ENGINES:
        if row.key == key:
            return row
    raise EngineNotInstalled(engine=key, docs="the README's Models section")


def installed() -> list[Engine]:
    """The engines installed beside the app (in this Python environment)."""
    return [row for row in ENGINES if importlib.util.find_spec(row.package) and _program(row)]


def command(row: Engine, model_folder: Path, served_name: str, port: int, gpu_share: float, context: int) -> list[str]:
    """The command that starts ``row``'s server for the model in ``model_folder``."""
    values = {"model": str(model_folder), "port": str(port), "name": served_name, "gpu": f"{gpu_share:g}",
              "context": str(context)}  # fmt: skip
    program = _program(row)
    if program is None:
        raise EngineNotInstalled(engine=row.name, docs=row.docs)
    return [*program, *(part.format(**values) for part in row.argv)]


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Servers:
    """The engine servers started from this data folder; ``catalog`` gets a row for each ready one."""

    def __init__(self, folder: Path, catalog: ModelRegistry) -> None:
        self._folder = folder
        self._catalog = catalog

    def start(
        self, engine_key: str, spec: ModelSpec, model_folder: Path, port: int, gpu_share: float, context: int
    ) -> Server:
        """Start ``engine_key``'s server for ``spec`` (its files in ``model_folder``) on ``port``.

        Raises :class:`EngineNotInstalled` or :class:`ServerPortInUse`; the engine's own
        failures (a model it cannot load, too little GPU memory) show in its log and status.
        """
        row = engine(engine_key)
        if row not in installed():
            raise EngineNotInstalled(engine=row.name, docs=row.docs)
        with socket.socket() as probe:
            try:
                probe.bind((HOST, port))
            except OSError as exc:
                raise ServerPortInUse(port=port) from exc
        argv = command(row, model_folder, spec.key, port, gpu_share, context)
        self._folder.mkdir(parents=True, exist_ok=True)
        server_id = uuid.uuid4().hex[:12]
        with self._log_path(server_id).open("ab") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        try:
            created = psutil.Process(process.pid).create_time()
        except psutil.Error:  # it ended at once (a flag the engine refused): its log says why
            created = time.time()
        server = Server(server_id, row.key, spec.key, spec.name, port, process.pid, created, argv)
        self._save(server)
        return server

    def all(self) -> list[Server]:
        """Every server started here, newest first, each with its current status; a server that
        became ready is attached to the catalog.
        """
        servers = [self._refresh(s) for s in self._load_all()]
        return sorted(servers, key=lambda s: -s.created)

    def get(self, server_id: str) -> Server:
        """The server ``server_id`` with its current status; raises :class:`UnknownServer`."""
        path = self._state_path(server_id)
        if not path.is_file():
            raise UnknownServer(server=server_id)
        return self._refresh(Server(**json.loads(path.read_text(encoding="utf-8"))))

    def log_tail(self, server_id: str, lines: int = 40) -> str:
        """The last ``lines`` lines the engine printed."""
        path = self._log_path(server_id)
        if not path.is_file():
            return ""
        with path.open("rb") as log:
            log.seek(max(0, path.stat().st_size - 64_000))
            return "\n".join(log.read().decode("utf-8", "replace").splitlines()[-lines:])

    def stop(self, server_id: str, wait_s: float = STOP_WAIT_S) -> Server:
        """Stop the server (SIGTERM to its process group, SIGKILL after ``wait_s``) and remove its
        catalog row; the log is kept.
        """
        server = self.get(server_id)
        if _alive(server):
            _signal(server, signal.SIGTERM)
            deadline = time.monotonic() + wait_s
            while _alive(server) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(server):
                _signal(server, signal.SIGKILL)
                while _alive(server):
                    time.sleep(0.05)
        server.status = "stopped"
        self._detach(server)
        self._save(server)
        return server

    def forget(self, server_id: str) -> None:
        """Remove a stopped or exited server from the list, with its log."""
        server = self.get(server_id)
        if server.status in {"starting", "ready"}:
            server = self.stop(server_id)
        self._detach(server)
        self._state_path(server_id).unlink(missing_ok=True)
        self._log_path(server_id).unlink(missing_ok=True)

    def _refresh(self, server: Server) -> Server:
        if server.status == "stopped":
            return server
        before = (server.status, server.exit_code, server.attached)
        if not _alive(server):
            server.status = "exited"
            self._detach(server)
        elif _healthy(server):
            server.status = "ready"
            if server.attached is None:
                name = f"{server.model_name} ({engine(server.engine).name})"
                row = row_for_endpoint(server.base_url, server.model_key, name)
                self._catalog.add(row)
                server.attached = row.key
        if (server.status, server.exit_code, server.attached) != before:
            self._save(server)
        return server

    def _detach(self, server: Server) -> None:
        if server.attached:
            with contextlib.suppress(Exception):
                self._catalog.remove(server.attached)
            server.attached = None

    def _load_all(self) -> list[Server]:
        servers = []
        for path in sorted(self._folder.glob("*.json")) if self._folder.is_dir() else []:
            with contextlib.suppress(OSError, ValueError, TypeError):
                servers.append(Server(**json.loads(path.read_text(encoding="utf-8"))))
        return servers

    def _save(self, server: Server) -> None:
        path = self._state_path(server.id)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(dataclasses.asdict(server)), encoding="utf-8")
        os.replace(partial, path)

    def _state_path(self, server_id: str) -> Path:
        return self._folder / f"{Path(server_id).name}.json"

    def _log_path(self, server_id: str) -> Path:
        return self._folder / f"{Path(server_id).name}.log"


def _program(row: Engine) -> list[str] | None:
    if not row.program.startswith("script:"):
        return [sys.executable, "-m", row.program]
    name = row.program.removeprefix("script:")
    # The script installed with the engine in this environment first, then the PATH.
    found = shutil.which(name, path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return [found] if found else None


def _alive(server: Server) -> bool:
    try:
        process = psutil.Process(server.pid)
        alive = abs(process.create_time() - server.created) < 1 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        alive = False
    if not alive:
        # Reaped after the check, not before: a server that ended between the two was seen
        # as exited with its exit code never collected.
        _reap(server)
    return alive


def _reap(server: Server) -> None:
    """Collect the exit code of a server this process started and that has ended."""
    with contextlib.suppress(ChildProcessError, OSError):
        pid, status = os.waitpid(server.pid, os.WNOHANG)
        if pid:
            server.exit_code = os.waitstatus_to_exitcode(status)


def _signal(server: Server, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(server.pid, sig)  # the engine's workers too: it leads its own session


def _healthy(server: Server) -> bool:
    try:
        reply = requests.get(f"http://{HOST}:{server.port}{engine(server.engine).health}", timeout=1.0)
    except requests.RequestException:
        return False
    return reply.status_code == 200
