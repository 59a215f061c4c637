"""Several sessions at once: queries while another session ingests; one model load for two asks;
the command line (a real process, as cron runs it) writing beside the running app.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.embeddings.factory import build_embeddings
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.models import loader
from core.rag.retrieval import SearchSettings
from core.services import build_services
from core.settings import Settings
from tests import convert_once
from tests.fakes import HASH_ROW, HashEmbeddings


def test_two_sessions_query_while_a_third_ingests(tmp_path):
    services = build_services(Settings(data_dir=tmp_path / "data", embed_batch_size=4))
    first = tmp_path / "first"
    first.mkdir()
    quant = "# 量化\n\nLMDeploy 支持 AWQ 4bit 权重量化和 KV cache int8 量化。\n"
    (first / "quant.md").write_text(quant, encoding="utf-8")
    (first / "pasta.md").write_text("# Pasta\n\nBoil the pasta for ten minutes, then add the sauce.\n")
    kb = services.knowledge.create("shared", "multilingual-e5-small-q4", SplitterSettings(300, 0))
    services.jobs.wait(services.start_ingest(kb, FolderInput(first)).id)

    more = tmp_path / "more"
    more.mkdir()
    for i in range(30):
        (more / f"page{i:02}.md").write_text(f"# Page {i}\n\nNotes about item {i}: " + "text " * 40)
    ingest = services.start_ingest(kb, FolderInput(more))

    wrong: list[str] = []
    errors: list[BaseException] = []

    def ask(question: str, expected: str) -> None:
        searcher = services.searcher()
        try:
            while services.jobs.get(ingest.id).active:
                hits = searcher.search(question, [kb], SearchSettings(k=1))
                if not hits or hits[0].chunk.path != expected:
                    wrong.append(question)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    sessions = [
        threading.Thread(target=ask, args=("lmdeploy 支持哪些量化", "quant.md")),
        threading.Thread(target=ask, args=("how long should pasta boil", "pasta.md")),
    ]
    for session in sessions:
        session.start()
    done = services.jobs.wait(ingest.id, timeout=300)
    for session in sessions:
        session.join(60)

    assert done.status == "done", done.error
    assert errors == [] and wrong == []
    check = services.knowledge.verify(kb)
    assert check == {"chunks": 32, "vectors": 32, "missing": 0, "leftover": 0}
    table = services.knowledge.chunk_table(kb)
    assert not table["id"].duplicated().any()


def test_two_sessions_asking_for_the_same_model_load_it_once(tmp_path, monkeypatch):
    services = build_services(Settings(data_dir=tmp_path / "data"))
    calls = []
    real_load = loader.load

    def slow_load(*args, **kwargs):
        calls.append(time.monotonic())
        time.sleep(0.5)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(loader, "load", slow_load)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(services.models.load(services.settings.default_model)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert len(calls) == 1
    assert results[0] is results[1]


ROOT = Path(__file__).resolve().parents[2]
EMBEDDING = "multilingual-e5-small-q4"  # the bundled model that loads fastest in a new process


def _cli(data_dir: Path, *args: str) -> subprocess.Popen:
    """``python -m core.ingest`` in a process of its own, on the app's data folder."""
    convert_once.seed(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "core.ingest", *args],
        cwd=ROOT,
        env={**os.environ, "KBA_DATA_DIR": str(data_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _notes(root: Path, topic: str, count: int) -> Path:
    root.mkdir()
    for i in range(count):
        (root / f"{topic}{i:02}.md").write_text(f"# {topic} {i}\n\nNotes on {topic} number {i}: " + "words " * 30)
    return root


def _until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the awaited state never came"
        time.sleep(0.05)


def _consistent(services, kb) -> None:
    """Records and vectors agree, one vector per chunk, no id twice."""
    check = services.knowledge.verify(kb)
    assert check["chunks"] == check["vectors"] and check["missing"] == check["leftover"] == 0, check
    assert not services.knowledge.chunk_table(kb)["id"].duplicated().any()


def test_the_command_line_and_the_app_write_one_base_at_once(tmp_path):
    data_dir = tmp_path / "data"
    services = build_services(Settings(data_dir=data_dir, embed_batch_size=4))
    kb = services.knowledge.create("shared", EMBEDDING, SplitterSettings(300, 0))
    first = _notes(tmp_path / "first", "pasta", 2)
    assert services.jobs.wait(services.start_ingest(kb, FolderInput(first)).id, timeout=120).status == "done"
    searcher = services.searcher()
    assert searcher.search("pasta notes", [kb], SearchSettings(k=1, mode="dense"))  # the app holds the index

    cli_notes = _notes(tmp_path / "cli", "zebra", 6)
    (cli_notes / "ledger.md").write_text("# Ledger\n\nThe zebra crossing ledger lists every crossing.\n")
    app_notes = _notes(tmp_path / "app", "quartz", 6)
    # An app write in progress, so that both the command line and the app's job must wait.
    with services.knowledge.writing(kb, None):
        cli = _cli(data_dir, "add", "shared", "--folder", str(cli_notes))
        said = next((line for line in cli.stderr if "waiting..." in line), "")  # read until it says so
        assert "another process is writing to knowledge base 'shared'; waiting..." in said
        job = services.start_ingest(kb, FolderInput(app_notes))
        _until(lambda: services.jobs.get(job.id).waiting_for == "shared")
    out, err = cli.communicate(timeout=120)
    done = services.jobs.wait(job.id, timeout=120)

    assert cli.returncode == 0, err
    assert "7 files ingested" in out
    assert done.status == "done", done.error
    _consistent(services, kb)
    assert len(services.knowledge.chunk_table(kb)) == 2 + 7 + 6
    hits = searcher.search("zebra crossing ledger", [kb], SearchSettings(k=1, mode="dense"))
    assert hits[0].chunk.path == "ledger.md"
    assert searcher.search("zebra crossing ledger", [kb], SearchSettings(k=1))[0].chunk.path == "ledger.md"


class _Pausing(HashEmbeddings):
    """Fast embeddings for the app's own base, which call ``pause`` once, before the ``at``-th batch."""

    def __init__(self, at: int, pause) -> None:
        super().__init__()
        self.at, self.pause = at, pause

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if len(self.calls) + 1 == self.at:
            self.pause()
        return super().embed_documents(texts)


def test_the_command_line_writes_another_base_in_the_middle_of_an_app_job(tmp_path):
    data_dir = tmp_path / "data"
    cli_ran: list[tuple[str, str]] = []
    cli_notes = _notes(tmp_path / "cli", "zebra", 10)

    def run_cli() -> None:
        cli = _cli(data_dir, "add", "theirs", "--folder", str(cli_notes))
        cli_ran.append(cli.communicate(timeout=120))
        assert cli.returncode == 0, cli_ran[-1][1]

    # Batches of 1 are written in groups of 8 chunks: the 9th batch starts the second group, so
    # the app job has written once when the command line writes, and writes again after.
    def builder(spec, batch, folder):
        return _Pausing(9, run_cli) if spec.key == HASH_ROW.key else build_embeddings(spec, batch, folder=folder)

    services = build_services(Settings(data_dir=data_dir, embed_batch_size=1), embedding_builder=builder)
    services.knowledge.embeddings.registry.add(HASH_ROW)
    mine = services.knowledge.create("mine", HASH_ROW.key, SplitterSettings(300, 0))
    theirs = services.knowledge.create("theirs", EMBEDDING, SplitterSettings(300, 0))
    seed = _notes(tmp_path / "seed", "pasta", 1)
    assert services.jobs.wait(services.start_ingest(theirs, FolderInput(seed)).id, timeout=120).status == "done"
    searcher = services.searcher()
    assert searcher.search("pasta notes", [theirs], SearchSettings(k=1, mode="dense"))  # the app holds the index

    done = services.jobs.wait(services.start_ingest(mine, FolderInput(_notes(tmp_path / "app", "quartz", 12))).id)

    assert done.status == "done", done.error
    out, err = cli_ran[0]
    assert "10 files ingested" in out
    assert "waiting" not in err  # different bases: neither waits for the other's whole job
    for kb in (mine, theirs):
        _consistent(services, kb)
    assert (len(services.knowledge.chunk_table(mine)), len(services.knowledge.chunk_table(theirs))) == (12, 11)
    hits = searcher.search("zebra number 7", [theirs], SearchSettings(k=1, mode="dense"))
    assert hits[0].chunk.path == "zebra07.md"
    mine_hits = searcher.search("quartz 10", [mine], SearchSettings(k=1, mode="dense", threshold=0.0))
    assert mine_hits[0].chunk.path == "quartz10.md"


def test_the_app_sees_a_refresh_by_the_command_line_without_a_restart(tmp_path):
    data_dir = tmp_path / "data"
    services = build_services(Settings(data_dir=data_dir))
    folder = _notes(tmp_path / "docs", "pasta", 2)
    (folder / "old.md").write_text("# Old\n\nThe obsolete walrus memo is withdrawn.\n")
    kb = services.knowledge.create("docs", EMBEDDING, SplitterSettings(300, 0))
    assert services.jobs.wait(services.start_ingest(kb, FolderInput(folder)).id, timeout=120).status == "done"
    searcher = services.searcher()
    assert searcher.search("walrus memo", [kb], SearchSettings(k=1, mode="dense"))[0].chunk.path == "old.md"

    (folder / "old.md").unlink()
    (folder / "new.md").write_text("# New\n\nThe kiwi harvest schedule starts in March.\n")
    refresh = _cli(data_dir, "refresh", "docs")
    out, err = refresh.communicate(timeout=120)
    assert refresh.returncode == 0, err
    assert "1 files ingested" in out and "1 removed" in out

    for mode in ("dense", "hybrid"):
        hits = searcher.search("kiwi harvest schedule", [kb], SearchSettings(k=3, mode=mode))
        assert hits[0].chunk.path == "new.md", mode
        assert "old.md" not in {h.chunk.path for h in hits}
    _consistent(services, kb)
    assert services.knowledge.stats(kb).vectors == 3
