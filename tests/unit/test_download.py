import threading
import time

import pytest

from core.app_files import AppFiles
from core.errors import (
    DownloadCorrupt,
    HubUnreachable,
    InvalidModelFolder,
    ModelFolderNotFound,
    NotEnoughDisk,
    RepoNotFound,
)
from core.jobs import JobManager
from core.models import download
from core.models.custom import row_from_folder
from core.models.download import COMPLETE_MARKER
from core.models.hubs import RemoteFile
from core.models.spec import ModelSpec
from core.services import build_services
from tests.fakes import FakeHub

SPEC = ModelSpec(
    key="m", name="Model M", family="qwen2", source="hub", params_b=0.1, modelscope_id="org/m", hf_id="org/m"
)
FILES = {
    "config.json": b'{"model_type": "qwen2"}',
    "tokenizer.json": b"{}" * 50,
    "model.safetensors": bytes(range(256)) * 8,
    "pytorch_model.bin": b"x" * 100,
    "onnx/model.onnx": b"y" * 100,
}


def _run(jobs, hub, folder):
    job = jobs.submit(
        "download",
        "model:m",
        "Model M",
        lambda ctx: download.download(SPEC, hub, "org/m", folder, ctx, app_files=AppFiles(folder.parent)),
    )
    return jobs.wait(job.id, timeout=30)


def test_download_fetches_needed_files_and_reports_bytes(tmp_path):
    folder = tmp_path / "m"
    job = _run(JobManager(tmp_path / "jobs"), FakeHub(FILES), folder)
    assert job.status == "done"
    assert sorted(p.name for p in folder.iterdir()) == [
        COMPLETE_MARKER,
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    wanted = len(FILES["config.json"]) + len(FILES["tokenizer.json"]) + len(FILES["model.safetensors"])
    assert job.total == job.done == wanted and job.unit == "bytes"
    assert (folder / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert download.is_complete(folder)


def test_interrupted_download_resumes_where_it_stopped(tmp_path):
    folder = tmp_path / "m"
    jobs = JobManager(tmp_path / "jobs")
    hub = FakeHub(FILES)
    # The first run loses its connection three times in a row and gives up.
    flaky = FakeHub(FILES)
    flaky.open = _failing_open(flaky, after=1000, times=3)
    assert _run(jobs, flaky, folder).status == "failed"
    part = folder / "model.safetensors.part"
    assert part.stat().st_size == 1000 and not download.is_complete(folder)

    job = _run(jobs, hub, folder)
    assert job.status == "done" and job.result["resumed_from"] > 1000
    assert ("model.safetensors", 1000) in hub.opened  # continued with a Range request
    assert (folder / "model.safetensors").read_bytes() == FILES["model.safetensors"]
    assert job.baseline == job.result["resumed_from"]


def test_a_dropped_connection_is_resumed_within_the_run(tmp_path):
    hub = FakeHub(FILES, fail_after=1000)
    job = _run(JobManager(tmp_path / "jobs"), hub, tmp_path / "m")
    assert job.status == "done"
    assert [offset for path, offset in hub.opened if path == "model.safetensors"] == [0, 1000]


def _failing_open(hub, after, times):
    real_open = FakeHub.open
    count = {"n": 0}

    def open_(repo_id, path, revision=None, offset=0):
        stream = real_open(hub, repo_id, path, revision, offset)
        if path != "model.safetensors" or count["n"] >= times:
            return stream
        count["n"] += 1
        inner = stream.chunks

        def chunks():
            sent = offset
            for chunk in inner:
                if sent >= after:
                    raise HubUnreachable(hub="FakeHub", detail="connection reset")
                sent += len(chunk)
                yield chunk

        stream.chunks = chunks()
        return stream

    return open_


def test_a_server_that_ignores_ranges_restarts_the_file(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors.part").write_bytes(FILES["model.safetensors"][:500])
    job = _run(JobManager(tmp_path / "jobs"), FakeHub(FILES, ignore_range=True), folder)
    assert job.status == "done"
    assert (folder / "model.safetensors").read_bytes() == FILES["model.safetensors"]


def test_cancel_keeps_the_partial_file_for_later(tmp_path):
    folder = tmp_path / "m"
    jobs = JobManager(tmp_path / "jobs")
    started = threading.Event()
    hub = FakeHub(FILES, on_chunk=lambda: (started.set(), time.sleep(0.002)))
    job = jobs.submit(
        "download",
        "model:m",
        "Model M",
        lambda ctx: download.download(SPEC, hub, "org/m", folder, ctx, app_files=AppFiles(tmp_path)),
    )
    started.wait(5)
    jobs.cancel(job.id)
    assert jobs.wait(job.id, timeout=30).status == "cancelled"
    assert not download.is_complete(folder)
    assert _run(jobs, FakeHub(FILES), folder).status == "done"


def test_unreachable_hub_fails_fast_with_a_way_out(tmp_path):
    hub = FakeHub(FILES, error=HubUnreachable(hub="ModelScope", detail="ConnectionError"))
    started = time.perf_counter()
    job = _run(JobManager(tmp_path / "jobs"), hub, tmp_path / "m")
    assert time.perf_counter() - started < 5
    assert job.status == "failed"
    assert "a folder I already have" in job.error_message("en") and "使用已有文件夹" in job.error_message("zh")


def test_not_enough_disk_refuses_before_downloading(tmp_path, monkeypatch):
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: type("U", (), {"free": 10})())
    hub = FakeHub(FILES)
    with pytest.raises(NotEnoughDisk) as caught:
        download.download(SPEC, hub, "org/m", tmp_path / "m", None, app_files=AppFiles(tmp_path))
    assert hub.opened == [] and "Model M" in str(caught.value)


def test_damaged_file_is_removed_and_reported(tmp_path):
    hub = FakeHub(FILES)
    real_list = hub.list_files
    hub.list_files = lambda repo, rev=None: [
        RemoteFile(f.path, f.size, "0" * 64 if f.path == "config.json" else f.sha256) for f in real_list(repo, rev)
    ]
    with pytest.raises(DownloadCorrupt):
        download.download(SPEC, hub, "org/m", tmp_path / "m", None, app_files=AppFiles(tmp_path))
    assert not (tmp_path / "m" / "config.json").exists()


def test_service_downloads_with_the_injected_hub_and_deletes_files(settings):
    hubs = []

    def fake_client(hub, endpoint):
        hubs.append((hub, endpoint))
        return FakeHub(FILES)

    services = build_services(settings, hub_client=fake_client)
    job = services.jobs.wait(services.start_download("qwen2.5-0.5b-instruct", hub="huggingface").id, timeout=30)
    assert job.status == "done", job.error
    assert hubs == [("huggingface", None)]
    folder = settings.models_dir / "qwen2.5-0.5b-instruct"
    assert download.is_complete(folder)
    services.delete_model_files("qwen2.5-0.5b-instruct")
    assert not folder.exists()


def test_missing_repository_is_reported(settings):
    missing = RepoNotFound(repo="x", hub="ModelScope")
    services = build_services(settings, hub_client=lambda hub, endpoint: FakeHub({}, error=missing))
    job = services.jobs.wait(services.start_download("qwen2.5-0.5b-instruct").id, timeout=30)
    assert job.status == "failed" and "was not found" in job.error_message("en")


def test_a_folder_i_already_have_that_does_not_exist_is_called_missing(tmp_path):
    with pytest.raises(ModelFolderNotFound) as caught:
        row_from_folder(tmp_path / "typo", "Model M")
    assert f"The folder '{tmp_path / 'typo'}' does not exist" in str(caught.value)
    assert "config.json" not in str(caught.value)
    assert "不存在文件夹" in caught.value.message("zh")


def test_a_folder_without_config_json_says_what_a_model_folder_holds(tmp_path):
    (tmp_path / "notes").mkdir()
    with pytest.raises(InvalidModelFolder) as caught:
        row_from_folder(tmp_path / "notes", "Model M")
    assert "it has no readable config.json (a model folder holds config.json" in str(caught.value)
    assert "其中没有可读取的 config.json" in caught.value.message("zh")
