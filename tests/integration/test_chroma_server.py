"""Knowledge bases in a Chroma server (``chroma run``) instead of the local store."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.rag.retrieval import KnowledgeRetriever
from core.services import build_services
from core.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path):
    port = _free_port()
    chroma = Path(sys.executable).with_name("chroma")
    process = subprocess.Popen(
        [str(chroma), "run", "--path", str(tmp_path / "chroma-server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        else:
            pytest.fail("chroma run did not start within 60 s")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_ingest_and_retrieve_through_a_chroma_server(chroma_server, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", chroma_host="127.0.0.1", chroma_port=chroma_server)
    services = build_services(settings)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "quant.md").write_text("# 量化\n\nLMDeploy 支持 AWQ 4bit 权重量化。\n", encoding="utf-8")
    (folder / "pasta.md").write_text("# Pasta\n\nBoil the pasta for ten minutes.\n")
    kb = services.knowledge.create("served", "multilingual-e5-small-q4", SplitterSettings())
    job = services.jobs.wait(services.start_ingest(kb, FolderInput(folder)).id, timeout=120)
    assert job.status == "done", job.error
    assert not settings.chroma_dir.exists()  # nothing went to the local store
    stats = services.knowledge.stats(kb)
    assert stats.chunks == stats.vectors == 2
    docs = KnowledgeRetriever(bases=services.knowledge, kb_names=["served"], k=1).invoke("lmdeploy 量化")
    assert docs[0].metadata["path"] == "quant.md"

    services.knowledge.delete(kb)
    assert services.knowledge.all() == []
