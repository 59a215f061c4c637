"""One writer per knowledge base at a time, across threads and processes: jobs wait (and say
so, and can be cancelled), page actions give up after a few seconds, the command line waits
with a message and a time limit.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from core import ingest
from core.errors import KnowledgeBaseBusy
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.services import build_services
from core.settings import Settings, get_settings
from tests.fakes import HASH_ROW, HashEmbeddings


@pytest.fixture
def services(tmp_path):
    built = build_services(
        Settings(data_dir=tmp_path / "data"), embedding_builder=lambda spec, batch, folder: HashEmbeddings()
    )
    built.knowledge.embeddings.registry.add(HASH_ROW)
    return built


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "quant.md").write_text("# Quant\n\nLMDeploy supports AWQ 4-bit weights.\n")
    return root


@contextlib.contextmanager
def held_elsewhere(bases, kb):
    """``kb``'s lock held by another thread, as another process would hold it."""
    taken, done = threading.Event(), threading.Event()

    def hold():
        with bases.writing(kb, None):
            taken.set()
            done.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        done.set()
        holder.join(10)


def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the awaited state never came"
        time.sleep(0.02)


def test_a_job_waits_for_another_writer_then_runs(services, folder):
    kb = services.knowledge.create("docs", HASH_ROW.key, SplitterSettings(300, 0))
    with held_elsewhere(services.knowledge, kb):
        job = services.start_ingest(kb, FolderInput(folder))
        until(lambda: services.jobs.get(job.id).waiting_for == "docs")
        assert services.knowledge.sources(kb) == []  # nothing was touched while it waited
    done = services.jobs.wait(job.id, timeout=30)
    assert done.status == "done", done.error
    assert done.waiting_for is None and done.result["chunks_added"] == 1


def test_a_waiting_job_can_be_cancelled(services, folder):
    kb = services.knowledge.create("docs", HASH_ROW.key, SplitterSettings(300, 0))
    with held_elsewhere(services.knowledge, kb):
        job = services.start_ingest(kb, FolderInput(folder))
        until(lambda: services.jobs.get(job.id).waiting_for == "docs")
        services.jobs.cancel(job.id)
        assert services.jobs.wait(job.id, timeout=5).status == "cancelled"
    assert services.knowledge.sources(kb) == []


def test_a_job_gives_up_after_the_wait_it_was_given(services, folder):
    kb = services.knowledge.create("docs", HASH_ROW.key, SplitterSettings(300, 0))
    services.write_wait_s = 0.3
    with held_elsewhere(services.knowledge, kb):
        job = services.jobs.wait(services.start_ingest(kb, FolderInput(folder)).id, timeout=10)
    assert job.status == "failed"
    assert "'docs' is being changed by another job or process" in job.error_message("en")
    assert "正被另一个任务或进程修改" in job.error_message("zh")


def test_page_actions_say_the_base_is_busy_while_another_writer_holds_it(services, folder):
    kb = services.knowledge.create("docs", HASH_ROW.key, SplitterSettings(300, 0))
    services.jobs.wait(services.start_ingest(kb, FolderInput(folder)).id, timeout=30)
    source = services.knowledge.sources(kb)[0]
    services.knowledge.action_wait_s = 0.2
    with held_elsewhere(services.knowledge, kb):
        for action in (
            lambda: services.knowledge.rename(kb, "renamed"),
            lambda: services.knowledge.remove_file(kb, source, "quant.md"),
            lambda: services.knowledge.remove_source(kb, source),
            lambda: services.knowledge.delete(kb),
        ):
            with pytest.raises(KnowledgeBaseBusy):
                action()
        assert services.knowledge.verify(kb) == {"chunks": 1, "vectors": 1, "missing": 0, "leftover": 0}
    assert services.knowledge.rename(kb, "renamed").name == "renamed"


def test_the_command_line_says_it_waits_and_when_it_gives_up(tmp_path, folder, monkeypatch, capsys):
    monkeypatch.setenv("KBA_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        app = build_services()
        kb = app.knowledge.create("docs", app.settings.default_embedding, SplitterSettings(300, 0))
        with held_elsewhere(app.knowledge, kb):
            status = ingest.main(["add", "docs", "--folder", str(folder), "--wait", "0.5"])
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert status == 1
    assert "another process is writing to knowledge base 'docs'; waiting..." in err
    assert "is being changed by another job or process" in err and "--wait SECONDS" in err
    assert app.knowledge.sources(kb) == []
