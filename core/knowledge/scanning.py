"""Walk a source folder and decide, file by file, what to ingest and what to skip (and why).

A file is skipped when a ``.gitignore`` (at any level) ignores it, when the default ignore
list names it (tool folders, lock files, minified and generated files, tokenizer tables), when
it is a binary, too large, empty, of a type no loader reads, or a link out of the folder.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from collections.abc import Iterator
from pathlib import Path

import pathspec

from core.app_files import resolves_inside
from core.knowledge.loaders import SUPPORTED_SUFFIXES
from core.knowledge.ocr import IMAGE_SUFFIXES, looks_like_image
from core.knowledge.reading import looks_binary

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
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".idea",
        ".vscode",
        ".ipynb_checkpoints",
        ".eggs",
        "site-packages",
        "__generated__",
        ".next",
        ".nuxt",
        ".cache",
        ".gradle",
        "target",
        "bower_components",
    }
)
# Files that are text but not documents: lock files, minified bundles, generated code, and
# tokenizer tables (a BPE merges.txt alone can outweigh a repository's documentation).
IGNORED_FILES = (
    "*.lock",
    "package-lock.json",
    "pnpm-lock.yaml",
    "go.sum",
    "*.min.js",
    "*.min.css",
    "*.map",
    "*.bundle.js",
    "*_pb2.py",
    "*_pb2_grpc.py",
    "*.pb.go",
    "merges.txt",
    "vocab.txt",
    "vocab.json",
    "tokenizer.json",
    "*.tiktoken",
    "spiece.model",
    "sentencepiece.bpe.model",
)
# Binary by their name; the NUL-byte check catches the rest. PDF, Office files and e-books are
# binary containers that the loaders read.
BINARY_SUFFIXES = frozenset(
    {
        ".gif",
        ".bmp",
        ".ico",
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
        ".doc",
        ".ppt",
    }
)
CONTAINER_SUFFIXES = frozenset({".pdf", ".docx", ".xlsx", ".xlsm", ".xls", ".pptx", ".epub"})
NAMED_TEXT_FILES = frozenset({"README", "LICENSE", "Makefile", "Dockerfile"})


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


SKIP_REASONS = (
    "ignored_folder",
    "gitignored",
    "ignored_file",
    "binary",
    "unsupported_type",
    "too_large",
    "empty",
    "unreadable",
    "link_outside",
)


def scan_folder(root: Path, max_bytes: int) -> tuple[list[FoundFile], list[SkippedFile]]:
    """Every ingestible file under ``root`` in path order, and every skipped one with its reason."""
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
    rules: list[tuple[str, pathspec.PathSpec]] = []  # (folder relative to root, its .gitignore)
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        base = here.relative_to(root).as_posix()
        base = "" if base == "." else base + "/"
        rules = [(b, spec) for b, spec in rules if base.startswith(b)]
        if ".gitignore" in files:
            rules.append((base, _gitignore(here / ".gitignore")))
        kept = []
        for name in sorted(dirs):
            rel = base + name
            if name in IGNORED_DIRS:
                skipped.append(SkippedFile(rel + "/", "ignored_folder"))
            elif _ignored(rules, rel + "/"):
                skipped.append(SkippedFile(rel + "/", "gitignored"))
            elif (here / name).is_symlink():
                skipped.append(SkippedFile(rel + "/", "link_outside", "folder links are not followed"))
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            path = here / name
            rel = base + name
            if _ignored(rules, rel):
                skipped.append(SkippedFile(rel, "gitignored"))
            elif any(fnmatch.fnmatch(name.lower(), pattern) for pattern in IGNORED_FILES):
                skipped.append(SkippedFile(rel, "ignored_file"))
            elif path.is_symlink() and not resolves_inside(path, real_root):
                skipped.append(SkippedFile(rel, "link_outside", "points outside the source folder"))
            else:
                yield path, rel


def _gitignore(path: Path) -> pathspec.PathSpec:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _ignored(rules: list[tuple[str, pathspec.PathSpec]], rel: str) -> bool:
    # Later (deeper) files win, as in git: a nested "!pattern" re-includes what a parent ignored.
    verdict = False
    for base, spec in rules:
        result = spec.check_file(rel[len(base) :])
        if result.include is not None:
            verdict = result.include
    return verdict


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
    if suffix not in SUPPORTED_SUFFIXES and path.name not in NAMED_TEXT_FILES:
        return "unsupported_type", suffix or "(no extension)"
    try:
        if suffix in IMAGE_SUFFIXES:
            with path.open("rb") as handle:  # read by OCR if it is an image, a binary like any other if not
                return None if looks_like_image(handle.read(12)) else ("binary", suffix)
        if suffix not in CONTAINER_SUFFIXES and looks_binary(path):
            return "binary", "contains NUL bytes"
    except OSError as exc:
        return "unreadable", exc.strerror or str(exc)
    return None
