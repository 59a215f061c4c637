"""The rules for where the app writes and what it deletes.

Writing: every file or folder the app names after something from outside (an upload, an
archive entry, a source's id, an export) is placed with :func:`inside`, which makes each name
one safe file name (:func:`safe_name`) and checks, links followed, that the result stays
strictly inside the folder it belongs to.

Deleting: only what the app itself created inside its data folder.

Every folder the app may later delete (a git clone, the copy of uploaded files, a downloaded
model, a scratch folder) is *claimed* here before it is created, and the claim is kept in a
small SQLite ledger in the data folder. :meth:`AppFiles.remove` is the only way ``core``
deletes a file or a folder, and it refuses unless the path

- is not a symbolic link (a link is never followed, so it cannot lead out),
- resolves to a place strictly inside the data folder, and
- is a claimed folder, or a file inside a claimed folder.

A folder the user named (a knowledge base's folder source, a model folder "I already have")
is never claimed, so it is never deleted, even when it lies inside the data folder or inside
an app-created folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from core.errors import NotAppCreated, OutsideFolder

LEDGER = "created.sqlite3"
MAX_NAME_BYTES = 255  # what Linux (and most file systems) allow for one name
FALLBACK_NAME = "upload"

# Characters Windows does not allow in file names (":" would even address an NTFS data stream).
_WINDOWS_UNSAFE = re.compile(r'[<>:"|?*]')
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
)
# Slashes that are no separator anywhere but read as one, so a listing would show a path.
_SLASH_LOOKALIKES = frozenset("\u2215\u2044\u29f8\u2216\u29f5\u29f9")
# Control, format (bidi overrides, zero-width), surrogate, private and unassigned characters,
# and line or paragraph separators: invisible, or unencodable, in a file name.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def safe_name(name: str) -> str:
    r"""One file name that keeps as much of ``name`` as it can and is safe on any system: never
    empty, ".", ".." or a path, at most 255 bytes of UTF-8, without control characters.

    Only the last part of a path is kept, as browsers may send a full path for an upload.

    >>> safe_name("../../etc/passwd"), safe_name("C:\\x\\report.md"), safe_name("..")
    ('passwd', 'report.md', 'upload')
    """
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(_safe_char(ch) for ch in base if unicodedata.category(ch) not in _DROPPED)
    # Windows drops trailing dots and spaces, which would turn "a.txt." into another file's name.
    base = _WINDOWS_UNSAFE.sub("_", base).strip().rstrip(". ")
    if base.split(".")[0].upper() in _WINDOWS_RESERVED:
        base = "_" + base
    base = _shorten(base).rstrip(". ")
    # "\u2024\u2024" or fullwidth "．．" become ".." wherever names are compatibility-normalised.
    return base if unicodedata.normalize("NFKC", base).strip(". ") else FALLBACK_NAME


def _shorten(name: str) -> str:
    """``name`` cut to MAX_NAME_BYTES, keeping its extension."""
    stem, dot, suffix = name.rpartition(".")
    if not stem or len(suffix) > 16:  # a dotfile, or no real extension
        stem, dot, suffix = name, "", ""
    keep = MAX_NAME_BYTES - len(f"{dot}{suffix}".encode())
    return stem.encode()[:keep].decode("utf-8", "ignore") + dot + suffix


def _safe_char(ch: str) -> str:
    compatible = unicodedata.normalize("NFKC", ch)
    return "_" if ch in _SLASH_LOOKALIKES or "/" in compatible or "\\" in compatible else ch


def inside(folder: Path, *names: str) -> Path:
    """``folder/name/…`` with each name made a :func:`safe_name`; raises :class:`OutsideFolder`
    if, links in ``folder`` followed, it would not lie strictly inside ``folder``.

    The last part is not followed: a link there is replaced or refused by whoever writes or
    deletes it, never written through.
    """
    path = folder.joinpath(*(safe_name(name) for name in names))
    try:
        real = path.parent.resolve() / path.name
    except (OSError, RuntimeError):  # a link loop
        real = None
    if real is None or not _strictly_inside(real, folder.resolve()):
        raise OutsideFolder(name="/".join(names), folder=str(folder))
    return path


def resolves_inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, links followed, is an existing file or folder strictly inside ``folder``
    (False for a link loop or a dangling link).
    """
    try:
        return _strictly_inside(path.resolve(strict=True), folder.resolve())
    except (OSError, RuntimeError):  # a loop raises RuntimeError before Python 3.13
        return False


def _strictly_inside(real: Path, real_folder: Path) -> bool:
    """Whether the resolved path ``real`` lies in ``real_folder`` and is not that folder itself."""
    return real != real_folder and real.is_relative_to(real_folder)


class AppFiles:
    """The ledger of the folders the app created in ``data_dir``, and the guarded delete.

    ``new`` says whether the ledger was just made, so that folders made by earlier versions
    can be recorded once.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._root = data_dir.resolve()
        self._ledger = data_dir / LEDGER
        self.new = not self._ledger.exists()
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS created (path TEXT PRIMARY KEY, at REAL NOT NULL)")

    def claim(self, folder: Path) -> Path:
        """Record ``folder`` as the app's before creating it; returns it unchanged.

        Raises :class:`NotAppCreated` for a place outside the data folder or reached
        through a link, so nothing the user owns can ever be recorded.
        """
        rel = self._inside(folder)
        with self._db() as db:
            db.execute("INSERT OR IGNORE INTO created (path, at) VALUES (?, ?)", (rel, time.time()))
        return folder

    def make_dir(self, folder: Path) -> Path:
        """Claim ``folder`` and create it (with its parents) if missing."""
        self.claim(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def scratch_dir(self, parent: Path, prefix: str) -> Path:
        """A new, claimed, empty folder in ``parent`` for work in progress."""
        # The random part first: a long prefix is cut short, and must not cut the part that makes it new.
        return self.make_dir(inside(parent, f".{uuid.uuid4().hex[:12]}-{prefix}"))

    def replace_folder(self, folder: Path, write: Callable[[Path], None]) -> Path:
        """Make ``folder`` (the app's) anew: ``write`` fills a new folder beside it, which then
        replaces ``folder`` whole, so a crash never leaves a half-written folder at its name.
        """
        partial = self.scratch_dir(folder.parent, f"{folder.name}.partial")
        try:
            write(partial)
            self.remove(folder)
            self.claim(folder)
            os.replace(partial, folder)
        finally:
            self.remove(partial)
        return folder

    def is_owned(self, path: Path) -> bool:
        """Whether :meth:`remove` would delete ``path``."""
        try:
            self._check(path)
        except NotAppCreated:
            return False
        return True

    def remove(self, path: Path) -> bool:
        """Delete ``path`` if it is the app's (see the module's rule); returns whether anything
        was there. Raises :class:`NotAppCreated`, touching nothing, for anything else.
        """
        if not os.path.lexists(path):
            self._forget(path)
            return False
        self._check(path)
        if path.is_dir():
            # rmtree unlinks links found inside instead of following them (and on Linux it
            # works through directory descriptors, so a folder swapped for a link mid-way is
            # not followed either): a clone holding a link to the user's home stays harmless.
            shutil.rmtree(path)
            self._forget(path)
        else:
            path.unlink()
        return True

    def claimed(self) -> list[Path]:
        """Every claimed folder, for audits and tests."""
        with self._db() as db:
            return [self._root / row[0] for row in db.execute("SELECT path FROM created ORDER BY path")]

    def _check(self, path: Path) -> None:
        if path.is_symlink():
            raise NotAppCreated(path=str(path), reason="it is a symbolic link")
        rel = self._inside(path)
        if path.is_dir():
            if not self._claimed(rel):
                raise NotAppCreated(path=str(path), reason="the app did not create this folder")
            return
        parents = [p.as_posix() for p in Path(rel).parents if p != Path(".")]
        if not any(self._claimed(parent) for parent in parents):
            raise NotAppCreated(path=str(path), reason="the app did not create this file")

    def _inside(self, path: Path) -> str:
        """``path`` relative to the data folder, both resolved; raises if it is not strictly inside.

        Resolving first means a link anywhere along the way (``data/sources`` -> ``~/notes``)
        is judged by where it leads, and claims are kept under resolved paths.
        """
        resolved = path.expanduser().resolve()
        if not _strictly_inside(resolved, self._root):
            raise NotAppCreated(path=str(path), reason=f"it is not inside the data folder {self._root}")
        return resolved.relative_to(self._root).as_posix()

    def _claimed(self, rel: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM created WHERE path = ?", (rel,)).fetchone() is not None

    def _forget(self, path: Path) -> None:
        with contextlib.suppress(NotAppCreated):
            rel = self._inside(path)
            with self._db() as db:
                db.execute("DELETE FROM created WHERE path = ? OR path LIKE ? ESCAPE '\\'", (rel, _like_prefix(rel)))

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self._ledger, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()


def _like_prefix(rel: str) -> str:
    escaped = rel.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}/%"


def write_atomically(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` in one step, so readers and crashes never see half a file.

    The temporary file has a fresh name and is opened exclusively: a link planted where a
    fixed ``.tmp`` name would be expected can never be written through to someone's file.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".writing-{uuid.uuid4().hex[:12]}.tmp")  # short: the name may be at the limit
    try:
        with tmp.open("xb") as handle:
            handle.write(payload)
        os.replace(tmp, path)
    finally:
        # The one deletion outside AppFiles.remove: a file this call itself just created exclusively.
        tmp.unlink(missing_ok=True)
