import json
import threading
import time

import pytest

from core.errors import JobAlreadyRunning, KnowledgeBaseNotFound
from core.jobs import JobManager


def test_job_reports_progress_and_result(tmp_path):
    jobs = JobManager(tmp_path)

    def work(ctx):
        for i in range(3):
            ctx.progress(done=i + 1, total=3, unit="files", chunks=i * 10)
        return {"answer": 42}

    job = jobs.wait(jobs.submit("ingest", "kb:1", "docs", work).id)
    assert job.status == "done"
    assert (job.done, job.total, job.fraction) == (3, 3, 1.0)
    assert job.detail["chunks"] == 20
    assert job.result == {"answer": 42}


def test_cancel_stops_work_at_next_check(tmp_path):
    jobs = JobManager(tmp_path)
    started = threading.Event()
    steps = []

    def work(ctx):
        started.set()
        for i in range(1000):
            ctx.check_cancelled()
            steps.append(i)
            time.sleep(0.01)

    job = jobs.submit("ingest", "kb:1", "docs", work)
    started.wait(5)
    jobs.cancel(job.id)
    final = jobs.wait(job.id, timeout=5)
    assert final.status == "cancelled"
    assert len(steps) < 1000


def test_app_error_becomes_a_message_in_both_languages(tmp_path):
    jobs = JobManager(tmp_path)

    def work(ctx):
        raise KnowledgeBaseNotFound(name="docs")

    job = jobs.wait(jobs.submit("ingest", "kb:1", "docs", work).id)
    assert job.status == "failed"
    assert "docs" in job.error_message("en") and "不存在" in job.error_message("zh")


def test_unexpected_error_is_reported_not_raised(tmp_path):
    jobs = JobManager(tmp_path)
    job = jobs.wait(jobs.submit("ingest", "kb:1", "docs", lambda ctx: 1 / 0).id)
    assert job.status == "failed"
    assert "ZeroDivisionError" in job.error_message("en")


def test_one_running_job_per_target(tmp_path):
    jobs = JobManager(tmp_path)
    release = threading.Event()
    first = jobs.submit("ingest", "kb:1", "docs", lambda ctx: release.wait(5))
    with pytest.raises(JobAlreadyRunning):
        jobs.submit("ingest", "kb:1", "docs", lambda ctx: None)
    other = jobs.submit("ingest", "kb:2", "other", lambda ctx: None)
    release.set()
    assert jobs.wait(first.id).status == "done"
    assert jobs.wait(other.id).status == "done"


def test_job_running_when_the_process_died_is_marked_interrupted(tmp_path):
    jobs = JobManager(tmp_path)
    job = jobs.wait(jobs.submit("ingest", "kb:1", "docs", lambda ctx: None).id)
    record = json.loads((tmp_path / f"{job.id}.json").read_text())
    record.update(status="running", pid=2**22 + 12345)  # no such process
    (tmp_path / f"{job.id}.json").write_text(json.dumps(record))

    restarted = JobManager(tmp_path)
    assert restarted.latest("kb:1").status == "interrupted"
    assert restarted.active() == []


def test_rate_and_eta_follow_progress(tmp_path):
    jobs = JobManager(tmp_path)
    gate = threading.Event()

    def work(ctx):
        ctx.progress(done=5, total=10)
        gate.wait(5)

    job = jobs.submit("ingest", "kb:1", "docs", work)
    time.sleep(0.2)
    live = jobs.get(job.id)
    assert live.rate and live.rate > 0
    assert live.eta_s is not None and live.eta_s > 0
    gate.set()
    jobs.wait(job.id)
