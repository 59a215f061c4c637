"""The API and MCP servers as their users start them: ``python -m core.api`` or ``python -m core.mcp``
in a process of their own on a free port of 127.0.0.1, over a data folder a test built; and that
data folder, built with the app's own ingestion and the bundled English embedding model.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx

from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.services import Services

ROOT = Path(__file__).resolve().parents[1]
DOCS = {
    "pasta.md": "# Pasta\n\nBoil the pasta for ten minutes, then add the tomato sauce.\n",
    "bread.md": "# Bread\n\nBread dough rests for an hour before baking at 220 degrees.\n",
    "gpus.md": "# Hardware\n\nThe inference server runs on two GPUs with 80 GB of memory each.\n",
}
KB = "cooking notes"
KB_ZH = "团队 笔记"  # a name with Chinese and a space, as names in the app may be


def build_knowledge_bases(services: Services, root: Path) -> None:
    """``KB`` over ``DOCS`` and ``KB_ZH`` over one of them, ingested by the app's job."""
    folder = root / "docs"
    folder.mkdir(parents=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    other = root / "team"
    other.mkdir()
    (other / "gpus.md").write_text(DOCS["gpus.md"], encoding="utf-8")
    for name, source in ((KB, folder), (KB_ZH, other)):
        kb = services.knowledge.create(name, "all-minilm-l6-v2", SplitterSettings())
        job = services.jobs.wait(services.start_ingest(kb, FolderInput(source)).id, timeout=300)
        assert job.status == "done", job.error


def data_folder(root: Path) -> Path:
    """A data folder under ``root`` holding the test knowledge bases (built with the app's services)."""
    from core.services import build_services
    from core.settings import Settings

    services = build_services(Settings(data_dir=root / "data"))
    build_knowledge_bases(services, root)
    return root / "data"


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a server gets: the test's data folder, no model hub, the project importable."""
    return {
        **os.environ,
        "KBA_DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


class ServerProcess:
    """``python -m <module> <args>`` listening on ``port``; ready once ``ready_path`` answers.

    Its stderr is kept in a file and shown if it does not start.
    """

    def __init__(self, module: str, args: list[str], port: int, env: dict[str, str], ready_path: str) -> None:
        self.command = [sys.executable, "-m", module, *args]
        self.url = f"http://127.0.0.1:{port}"
        self.env = env
        self.ready_path = ready_path
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - open while the server runs, closed on exit
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                httpx.get(self.url + self.ready_path, timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        log, status = self.log(), self.process.poll()
        self.__exit__()
        raise RuntimeError(f"{' '.join(self.command)} did not start (exit status {status}):\n{log}")

    def log(self) -> str:
        """What the server wrote so far."""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
