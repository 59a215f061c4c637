"""Walk a source folder and decide, file by file, what to ingest and what to skip (and why)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

from core.knowledge.reading import TEXT_SUFFIXES, looks_binary

# Folders that hold tooling, environments or build output rather than documents.
IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        "node_modules",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".idea",
        ".vscode",
        ".ipynb_checkpoints",
        ".eggs",
    }
)
BINARY_SUFFIXES = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".bmp",
        ".ico",
        ".webp",
        ".svgz",
        ".mp3",
        ".mp4",
        ".wav",
        ".avi",
        ".mov",
        ".zip",
        ".gz",
        ".tgz",
        ".bz2",
        ".xz",
        ".7z",
        ".rar",
        ".tar",
        ".whl",
        ".so",
        ".dll",
        ".dylib",
        ".exe",
        ".bin",
        ".o",
        ".a",
        ".pyc",
        ".class",
        ".jar",
        ".pt",
        ".pth",
        ".safetensors",
        ".gguf",
        ".onnx",
        ".npy",
        ".npz",
        ".pkl",
        ".h5",
        ".parquet",
        ".sqlite",
        ".sqlite3",
        ".db",
        ".ttf",
        ".otf",
        ".woff",
        ".woff2",
        ".eot",
    }
)


@dataclasses.dataclass(frozen=True)
class FoundFile:
    """A file to ingest; ``path`` is relative to the source root, with forward slashes."""

    path: str
    abs_path: Path
    size: int


@dataclasses.dataclass(frozen=True)
class SkippedFile:
    """A file left out, with a reason code the pages translate (see ``SKIP_REASONS``)."""

    path: str
    reason: str
    detail: str = ""


SKIP_REASONS = ("ignored_folder", "binary", "unsupported_type", "too_large", "empty", "unreadable", "link_outside")


def scan_folder(root: Path, max_bytes: int) -> tuple[list[FoundFile], list[SkippedFile]]:
    """Every ingestible file under ``root`` in a stable order, and every skipped one with its reason."""
    found: list[FoundFile] = []
    skipped: list[SkippedFile] = []
    for entry, rel in _walk(root, skipped):
        reason = _skip_reason(entry, max_bytes)
        if reason:
            skipped.append(SkippedFile(rel, *reason))
        else:
            found.append(FoundFile(rel, entry, entry.stat().st_size))
    return sorted(found, key=lambda f: f.path), sorted(skipped, key=lambda s: s.path)


def _walk(root: Path, skipped: list[SkippedFile]) -> Iterator[tuple[Path, str]]:
    real_root = root.resolve()
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        kept = []
        for name in sorted(dirs):
            rel = (here / name).relative_to(root).as_posix()
            if name in IGNORED_DIRS:
                skipped.append(SkippedFile(rel + "/", "ignored_folder"))
            elif (here / name).is_symlink():
                skipped.append(SkippedFile(rel + "/", "link_outside", "folder links are not followed"))
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            path = here / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink() and not _inside(path, real_root):
                skipped.append(SkippedFile(rel, "link_outside", "points outside the source folder"))
                continue
            yield path, rel


def _inside(path: Path, real_root: Path) -> bool:
    try:
        path.resolve(strict=True).relative_to(real_root)
    except (OSError, ValueError, RuntimeError):
        return False
    return True


def _skip_reason(path: Path, max_bytes: int) -> tuple[str, str] | None:
    suffix = path.suffix.lower()
    if suffix in BINARY_SUFFIXES:
        return "binary", suffix
    try:
        size = path.stat().st_size
    except OSError as exc:
        return "unreadable", exc.strerror or str(exc)
    if size == 0:
        return "empty", ""
    if size > max_bytes:
        return "too_large", f"{size / 1e6:.1f} MB"
    if suffix not in TEXT_SUFFIXES and path.name not in {"README", "LICENSE", "Makefile", "Dockerfile"}:
        return "unsupported_type", suffix or "(no extension)"
    try:
        if looks_binary(path):
            return "binary", "contains NUL bytes"
    except OSError as exc:
        return "unreadable", exc.strerror or str(exc)
    return None
