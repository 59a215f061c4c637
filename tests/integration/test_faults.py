"""Faults: a process killed mid-ingestion or mid-download, broken or too-large models, a damaged store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import ModelOutOfMemory
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.models import download, loader
from core.models.loader import LoadOptions
from core.models.spec import ModelSpec
from core.services import build_services
from core.settings import Settings
from tests import convert_once
from tests.hub_server import HubServer
from tests.tiny_models import build_tiny_model, tiny_spec

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the awaited state never came")
        time.sleep(0.1)


def _chunk_rows(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return conn.execute("SELECT COUNT(*) FROM chunk").fetchone()[0]
    except sqlite3.Error:
        return 0


INGEST = """
import sys
from pathlib import Path
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.services import build_services
from core.settings import Settings
services = build_services(Settings(data_dir=Path(sys.argv[1]), embed_batch_size=2))
kb = services.knowledge.create("killed", "multilingual-e5-small-q4", SplitterSettings(200, 0))
services.jobs.wait(services.start_ingest(kb, FolderInput(Path(sys.argv[2]))).id)
"""


def test_killed_during_ingestion_the_base_stays_consistent_and_the_job_finishes(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(40):
        (folder / f"note{i:02}.md").write_text(f"# Note {i}\n\n" + f"Paragraph {i} about topic {i}. " * 8)
    data_dir = tmp_path / "data"
    convert_once.seed(data_dir)
    process = subprocess.Popen(
        [sys.executable, "-c", INGEST, str(data_dir), str(folder)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: _chunk_rows(data_dir / "knowledge.sqlite3") >= 16)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()

    services = build_services(Settings(data_dir=data_dir))
    kb = services.knowledge.get("killed")
    check = services.knowledge.verify(kb)
    assert 16 <= check["chunks"] < 80 and check["missing"] == 0  # every recorded chunk can be found
    assert services.jobs.latest(f"kb:{kb.id}").status == "interrupted"
    stats = services.knowledge.stats(kb)
    assert stats.chunks == sum(
        services.knowledge.records.files(s.id)[p].n_chunks
        for s in services.knowledge.sources(kb)
        for p in services.knowledge.records.files(s.id)
    )

    job = services.jobs.wait(services.start_refresh(kb, services.knowledge.sources(kb)[0]).id, timeout=300)
    assert job.status == "done", job.error
    final = services.knowledge.verify(kb)
    assert final["chunks"] == final["vectors"] and final["missing"] == final["leftover"] == 0
    texts = services.knowledge.chunk_table(kb)
    assert not texts.duplicated(["path", "text"]).any() and set(texts["path"]) == {f"note{i:02}.md" for i in range(40)}


DOWNLOAD = """
import sys
from pathlib import Path
from core.app_files import AppFiles
from core.models import download
from core.models.hubs import HuggingFaceClient
from core.models.spec import ModelSpec
spec = ModelSpec(key="m", name="M", family="llama", source="hub", params_b=0.1, hf_id="org/m")
folder = Path(sys.argv[2])
download.download(spec, HuggingFaceClient(sys.argv[1]), "org/m", folder, app_files=AppFiles(folder.parent))
"""


def test_killed_during_a_download_it_resumes_where_it_stopped(tmp_path):
    weights = os.urandom(3 * 1024 * 1024)
    files = {"config.json": b'{"model_type": "llama"}', "model.safetensors": weights}
    folder = tmp_path / "m"
    part = folder / "model.safetensors.part"
    with HubServer("org/m", files, delay=0.05) as hub:
        process = subprocess.Popen(
            [sys.executable, "-c", DOWNLOAD, hub.endpoint, str(folder)],
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "0"},
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for(lambda: part.is_file() and part.stat().st_size > 512 * 1024, timeout=60)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        kept = part.stat().st_size
        assert not download.is_complete(folder)

        hub.delay = 0.0
        resumed = subprocess.run(
            [sys.executable, "-c", DOWNLOAD, hub.endpoint, str(folder)],
            cwd=ROOT,
            env={**os.environ, "HF_HUB_OFFLINE": "0"},
            capture_output=True,
            timeout=120,
        )
        assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert download.is_complete(folder)
    assert (folder / "model.safetensors").read_bytes() == weights
    assert f"bytes={kept}-" in hub.ranges  # the second run asked only for the missing bytes


def test_broken_model_files_give_a_clear_error_and_the_app_keeps_working(tmp_path):
    services = build_services(Settings(data_dir=tmp_path / "data"))
    folder = build_tiny_model(tmp_path / "broken", "llama")
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    services.catalog.add(tiny_spec(folder, key="broken", name="Broken", params_b=0.1))
    failed = services.jobs.wait(services.start_load("broken").id, timeout=120)
    assert failed.status == "failed"
    assert failed.error_message("en").startswith("Could not load model 'Broken'")
    assert services.models.current is None
    works = services.jobs.wait(services.start_load(services.settings.default_model).id, timeout=300)
    assert works.status == "done" and services.models.current.spec.key == services.settings.default_model


def test_running_out_of_memory_while_loading_is_explained(tmp_path, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", out_of_memory)
    spec = ModelSpec(
        key="big",
        name="Big",
        family="llama",
        source="local",
        params_b=70,
        mem_bf16_gb=168.5,
        local_path=str(build_tiny_model(tmp_path / "big", "llama")),
    )
    with pytest.raises(ModelOutOfMemory) as caught:
        loader.load(spec, Settings(data_dir=tmp_path / "data"), LoadOptions(device="cpu"))
    assert "not enough memory to load Big (it needs about 168.5 GB)" in str(caught.value)


def test_damaged_records_are_moved_aside_and_the_app_starts(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "knowledge.sqlite3").write_bytes(b"this is not a database" * 100)
    services = build_services(Settings(data_dir=data_dir))
    assert services.knowledge.records.recovered is not None
    assert "moved the file aside" in str(services.knowledge.records.recovered)
    assert list(data_dir.glob("knowledge.sqlite3.damaged-*"))
    assert services.knowledge.create("fresh", "multilingual-e5-small-q4", SplitterSettings()).name == "fresh"


def test_lost_vectors_are_detected_and_repaired_from_the_sources(tmp_path):
    data_dir = tmp_path / "data"
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nLMDeploy 支持 AWQ 量化。\n", encoding="utf-8")
    (folder / "b.md").write_text("# B\n\nBoil the pasta.\n")
    services = build_services(Settings(data_dir=data_dir))
    kb = services.knowledge.create("docs", "multilingual-e5-small-q4", SplitterSettings())
    services.jobs.wait(services.start_ingest(kb, FolderInput(folder)).id)
    services.knowledge.collection(kb).delete(ids=services.knowledge.records.chunk_ids_of_kb(kb.id)[:1])

    check = services.knowledge.verify(kb)
    assert check["missing"] == 1
    job = services.jobs.wait(services.start_rebuild(kb).id, timeout=300)
    assert job.status == "done", job.error
    assert services.knowledge.verify(kb) == {"chunks": 2, "vectors": 2, "missing": 0, "leftover": 0}
