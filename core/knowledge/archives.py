"""Files and zip archives uploaded through the browser, stored where a source folder can read them.

Names come from another machine and may be anything: an uploaded file keeps only a safe base
name, and an archive entry that would land outside the target folder is refused. Archives are
checked against size and count limits before anything is written, and extracted into a
staging folder first, so a refused or damaged archive leaves the target untouched.
"""

from __future__ import annotations

import dataclasses
import io
import lzma
import os
import re
import stat
import unicodedata
import zipfile
import zlib
from pathlib import Path

from core.app_files import AppFiles, inside, safe_name, write_atomically
from core.errors import ArchiveRefused, OutsideFolder

# Small files compress very well without being bombs; only larger ones are held to the ratio limit.
RATIO_CHECK_BYTES = 1_000_000
SKIP_REASONS = ("outside_target", "link", "encrypted", "unsupported")

_UTF8_FLAG = 0x800
_ENCRYPTED_FLAG = 0x1
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class SkippedEntry:
    """An archive entry left out, with a reason code the pages translate (see ``SKIP_REASONS``)."""

    name: str
    reason: str


def save_upload(name: str, data: bytes, dest: Path) -> Path:
    """Store one uploaded file in ``dest``, a folder the app created, with a safe file name (no
    directories, no traversal); returns its path.

    A file of the same name is replaced, so uploading a new version updates the source.
    """
    dest.mkdir(parents=True, exist_ok=True)
    target = inside(dest, name)
    write_atomically(target, data)
    return target


def extract_zip(
    archive: Path | bytes,
    dest: Path,
    *,
    files: AppFiles,
    max_total_bytes: int = 500_000_000,
    max_files: int = 20_000,
    max_ratio: float = 200.0,
) -> list[SkippedEntry]:
    """Extract the zip ``archive`` (a file, or its bytes) into ``dest``; returns the entries left out.

    Entries that would land outside ``dest`` (absolute, ``../``, drive letters, or through a
    link already in ``dest``), links and encrypted entries are refused and listed. A zip bomb
    (total uncompressed size over ``max_total_bytes``, more than ``max_files`` entries, or an
    entry over ``RATIO_CHECK_BYTES`` compressed more than ``max_ratio`` to one) or a damaged
    archive raises :class:`ArchiveRefused`, with nothing written to ``dest``. Files already in
    ``dest`` with the same names are replaced.
    """
    label = archive.name if isinstance(archive, Path) else "The uploaded archive"
    try:
        zf = zipfile.ZipFile(archive if isinstance(archive, Path) else io.BytesIO(archive))
    # NotImplementedError: a directory entry claiming a zip version from the future ("zip file version 11.0")
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
        raise ArchiveRefused(name=label, reason=f"it is not a zip file, or it cannot be read ({exc})") from None
    with zf:
        infos = zf.infolist()
        _check_limits(infos, label, max_total_bytes, max_files, max_ratio)
        planned, skipped = _plan(infos)
        staging = files.scratch_dir(dest.parent, f"{dest.name}-extracting")
        try:
            staged = _stage(zf, planned, staging, label, skipped)
            _move_into(staging, dest, staged, label, skipped)
        finally:
            files.remove(staging)
    return skipped


def _check_limits(infos: list[zipfile.ZipInfo], label: str, max_total: int, max_files: int, max_ratio: float) -> None:
    # The central directory's sizes are checked before anything is inflated; _stage makes sure
    # no entry yields more than it declares here.
    if len(infos) > max_files:
        raise ArchiveRefused(name=label, reason=f"it holds {len(infos)} entries, more than the {max_files} allowed")
    total = sum(info.file_size for info in infos)
    if total > max_total:
        raise ArchiveRefused(
            name=label,
            reason=f"it would unpack to {total / 1e6:.1f} MB, more than the {max_total / 1e6:.1f} MB allowed",
        )
    for info in infos:
        if info.file_size > RATIO_CHECK_BYTES and info.file_size > max_ratio * info.compress_size:
            ratio = info.file_size / max(info.compress_size, 1)
            raise ArchiveRefused(
                name=label,
                reason=f"'{_entry_name(info)}' is compressed {ratio:.0f} to 1, which looks like a zip bomb",
            )


def _plan(infos: list[zipfile.ZipInfo]) -> tuple[dict[str, zipfile.ZipInfo], list[SkippedEntry]]:
    """The file entries to extract by relative target path (a later duplicate wins), and the entries refused."""
    planned: dict[str, zipfile.ZipInfo] = {}
    skipped: list[SkippedEntry] = []
    for info in infos:
        name = _entry_name(info)
        rel = _relative_path(name)
        if rel is None:
            skipped.append(SkippedEntry(name, "outside_target"))
        elif not rel or name.endswith(("/", "\\")):
            continue  # folders are made for the files inside them
        elif stat.S_ISLNK(info.external_attr >> 16):
            skipped.append(SkippedEntry(name, "link"))
        elif info.flag_bits & _ENCRYPTED_FLAG:
            skipped.append(SkippedEntry(name, "encrypted"))
        else:
            planned[rel] = info
    return planned, skipped


def _stage(
    zf: zipfile.ZipFile, planned: dict[str, zipfile.ZipInfo], staging: Path, label: str, skipped: list[SkippedEntry]
) -> dict[str, str]:
    """Extract the planned entries below ``staging``; returns the entry names by relative path written."""
    staged: dict[str, str] = {}
    for rel, info in planned.items():
        name = _entry_name(info)
        target = inside(staging, *rel.split("/"))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                written = 0
                # zipfile stops at the declared size today; reading one byte past it keeps the limits
                # checked above true without relying on that.
                while chunk := src.read(min(_CHUNK, info.file_size - written + 1)):
                    written += len(chunk)
                    if written > info.file_size:
                        raise ArchiveRefused(name=label, reason=f"'{name}' holds more data than its header declares")
                    out.write(chunk)
        except NotImplementedError:
            skipped.append(SkippedEntry(name, "unsupported"))
            continue
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, ValueError) as exc:
            # ValueError: zipfile's own on impossible offsets ("negative seek value") or names
            raise ArchiveRefused(name=label, reason=f"'{name}' is damaged ({exc})") from None
        except OSError as exc:
            if exc.errno is None:  # bz2 reports damaged data as an OSError without an errno
                raise ArchiveRefused(name=label, reason=f"'{name}' is damaged ({exc})") from None
            raise ArchiveRefused(name=label, reason=f"'{name}' could not be written ({exc.strerror or exc})") from None
        staged[rel] = name
    return staged


def _move_into(staging: Path, dest: Path, staged: dict[str, str], label: str, skipped: list[SkippedEntry]) -> None:
    dest.mkdir(exist_ok=True)
    for rel, name in staged.items():
        try:
            # A link already in dest (say docs -> /etc) would carry the file elsewhere.
            target = inside(dest, *rel.split("/"))
        except OutsideFolder:
            skipped.append(SkippedEntry(name, "outside_target"))
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(inside(staging, *rel.split("/")), target)
        except OSError as exc:
            raise ArchiveRefused(name=label, reason=f"'{name}' could not be written ({exc.strerror or exc})") from None


def _entry_name(info: zipfile.ZipInfo) -> str:
    """The entry's name as its author saw it.

    Without the UTF-8 flag a name is officially CP437, but zip tools on Chinese Windows write
    GBK (CP936) and others write UTF-8 without setting the flag, so those are tried first.
    """
    if info.flag_bits & _UTF8_FLAG:
        return info.filename
    raw = info.filename.encode("cp437")
    for encoding in ("utf-8", "gbk"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            pass
    return info.filename


def _relative_path(name: str) -> str | None:
    """The entry's path below the target folder, each part a safe name, "" for the folder
    itself, or None if it points elsewhere.
    """
    # Windows tools may write backslashes; either way a leading separator or a drive is absolute.
    path = unicodedata.normalize("NFC", name).replace("\\", "/")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return None
    parts = [part for part in path.split("/") if part not in {"", "."}]
    if ".." in parts:
        return None
    # Made safe here already, so that two entries that end up with the same name are one file.
    return "/".join(safe_name(part) for part in parts)
