"""Where a knowledge base's files come from: a folder, a git repository, or uploaded files.

``prepare`` turns what the user gave into a recorded source and a folder to scan: a folder
is read where it is; a repository is shallow-cloned (or, the next time, fetched, and the git
diff says which files can have changed); uploads and zip archives are stored in the app's
own copy, with unsafe archive entries refused.

A repository's recorded address never holds credentials: a token typed into it is used for
that first clone only, and a later fetch gets one from the environment variable the
configuration names for that server (``KBA_GIT_TOKENS``) or from git's own credential helper.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

from core.app_files import inside
from core.credentials import (
    Allowed,
    Credentials,
    address_without_credentials,
    configured_secret,
    forget_in_file,
    split_credentials,
)
from core.errors import FolderNotFound
from core.knowledge import git_source
from core.knowledge.archives import extract_zip, save_upload
from core.knowledge.bases import KnowledgeBases
from core.knowledge.records import KnowledgeBase, Source
from core.knowledge.scanning import SkippedFile

UPLOADS = "uploads"


@dataclasses.dataclass(frozen=True)
class FolderInput:
    """A folder on the machine running the app."""

    path: Path


@dataclasses.dataclass(frozen=True)
class GitInput:
    """A git repository (https or ssh) at a branch or tag (its default branch if None)."""

    url: str
    ref: str | None = None


@dataclasses.dataclass(frozen=True)
class UploadInput:
    """Files sent through the browser, as (name, bytes); zip archives are unpacked."""

    files: tuple[tuple[str, bytes], ...]


SourceInput = FolderInput | GitInput | UploadInput


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A source ready to scan: its record, its folder, the paths that can have changed (None:
    any), the commit to record once ingested, and archive entries that were refused.
    """

    source: Source
    root: Path
    changed: set[str] | None = None
    commit: str | None = None
    refused: tuple[SkippedFile, ...] = ()


def describe(item: SourceInput) -> str:
    """A short label for a source input, for job titles."""
    match item:
        case FolderInput(path):
            return str(path)
        case GitInput(url, ref):
            url = address_without_credentials(url)
            return f"{url}@{ref}" if ref else url
        case UploadInput(files):
            return ", ".join(name for name, _ in files[:3]) + ("…" if len(files) > 3 else "")


def prepare(
    bases: KnowledgeBases,
    kb: KnowledgeBase,
    item: SourceInput,
    git_timeout_s: float = 300,
    git_tokens: Allowed | None = None,
) -> Prepared:
    """Record the source of ``item`` in ``kb`` and make its files ready to scan.

    ``git_tokens`` says which environment variable holds the token of which git server.
    """
    match item:
        case FolderInput(path):
            folder = path.expanduser()
            if not folder.is_dir():
                raise FolderNotFound(path=str(path))
            source = _record(bases, kb, "folder", str(folder.resolve()))
            return Prepared(source, folder)
        case GitInput(url, ref):
            url, typed = split_credentials(git_source.check_git_url(url))
            source = _record(bases, kb, "git", url, ref)
            return _git(bases, source, git_timeout_s, typed or _configured(url, git_tokens))
        case UploadInput(files):
            source = _record(bases, kb, "upload", UPLOADS)
            root = bases.files.make_dir(bases.source_folder(source))
            refused: list[SkippedFile] = []
            for name, data in files:
                if name.lower().endswith(".zip"):
                    # "...zip" (stem "..") must not unpack beside the other sources.
                    target = inside(root, Path(name).stem)
                    entries = extract_zip(data, target, files=bases.files)
                    refused += [SkippedFile(f"{name}/{e.name}", e.reason) for e in entries]
                else:
                    save_upload(name, data, root)
            return Prepared(source, root, refused=tuple(refused))


def refresh(
    bases: KnowledgeBases, source: Source, git_timeout_s: float = 300, git_tokens: Allowed | None = None
) -> Prepared:
    """Make an existing source ready to scan again (a repository is fetched first, with the
    token ``git_tokens`` allows for its server, if any).
    """
    if source.kind == "git":
        return _git(bases, source, git_timeout_s, _configured(source.location, git_tokens))
    root = bases.source_folder(source)
    if not root.is_dir():
        raise FolderNotFound(path=str(root))
    return Prepared(source, root)


def forget_clone_credentials(bases: KnowledgeBases) -> None:
    """Take credentials out of the git config of clones that earlier versions made from an
    address holding them (git keeps the address it cloned from as the remote's URL).
    """
    for config in bases.sources_dir.glob("*/.git/config"):
        forget_in_file(config)


def _record(bases: KnowledgeBases, kb: KnowledgeBase, kind: str, location: str, ref: str | None = None) -> Source:
    return bases.records.upsert_source(
        Source(uuid.uuid4().hex[:16], kb.id, kind, location, ref, None, time.time(), None)
    )


def _configured(url: str, git_tokens: Allowed | None) -> Credentials | None:
    found = configured_secret(git_tokens or {}, url)
    return Credentials.parse(found[1]) if found else None


def _git(bases: KnowledgeBases, source: Source, timeout_s: float, credentials: Credentials | None) -> Prepared:
    folder = bases.source_folder(source)
    if not (folder / ".git").is_dir():
        bases.files.remove(folder)  # what an earlier, killed clone left
        try:
            commit = git_source.clone(
                source.location, folder, source.ref, timeout_s, files=bases.files, credentials=credentials
            )
        except Exception:
            if source.updated is None:  # never ingested: forget the half-made source
                bases.records.delete_source(source.id)
            bases.files.remove(folder)
            raise
        return Prepared(source, folder, commit=commit)
    old, new, changes = git_source.update(folder, source.ref, timeout_s, credentials)
    # The diff is only trusted when the last ingestion finished at the commit it starts from.
    changed = {c.path for c in changes if c.status != "deleted"} if old == source.commit_sha else None
    return Prepared(source, folder, changed=changed, commit=new)
