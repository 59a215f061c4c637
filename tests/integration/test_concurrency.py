"""Several sessions at once: queries while another session ingests; one model load for two asks."""

from __future__ import annotations

import threading
import time

from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.models import loader
from core.rag.retrieval import SearchSettings
from core.services import build_services
from core.settings import Settings


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
