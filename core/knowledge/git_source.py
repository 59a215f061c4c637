"""Knowledge-base sources that are git repositories: shallow clones, kept up to date.

Only the files of one commit matter, so a clone holds a single commit of a single branch or
tag, and an update fetches the newest commit of that ref and reports which files changed.
git runs as a subprocess with prompts disabled and under a timeout. Only https, ssh and (for
this machine only) http reach it: other transports (``ext::``, ``file://``, ``git://``) can
run commands, read local files or skip encryption, so URLs are checked before git sees them.

A user name and token in an http(s) URL never reach git's command line or the clone's config:
git gets the address without them, and the credentials as a header through its environment,
for that one process (see :mod:`core.credentials`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from core.app_files import AppFiles
from core.credentials import (
    Credentials,
    address_without_credentials,
    origin,
    split_credentials,
    without_credentials,
)
from core.errors import (
    AppError,
    GitCredentialsNeeded,
    GitFailed,
    GitMissing,
    GitTimeout,
    InvalidGitRef,
    InvalidGitUrl,
)

_OPTIONS = (
    # Transports are allow-listed again inside git, which also covers redirects and submodules.
    *("-c", "protocol.allow=never", "-c", "protocol.https.allow=always", "-c", "protocol.ssh.allow=always"),
    # A user's submodule.recurse=true would otherwise fetch and check out submodules too.
    *("-c", "submodule.recurse=false", "-c", "fetch.recurseSubmodules=false"),
    # Automatic gc after a fetch would detach and keep working in the clone while we check out.
    *("-c", "gc.autoDetach=false"),
)
# Set when the app runs inside a git hook; they would point every command at that repository.
_REPOSITORY_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR")

_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCP = re.compile(r"^(?P<user>[^@/:]+)@(?P<host>\[[0-9A-Fa-f:.]+\]|[^@/:\[\]]+):(?P<path>.+)$")
_REF_CHARS = re.compile(r"[^\x00-\x20\x7f~^:?*\[\\]+")
# What git and common hosts say when an http(s) server wants credentials it did not get.
_NEEDS_CREDENTIALS = re.compile(
    r"Authentication failed|could not read (Username|Password)|returned error: 40[13]|HTTP Basic: Access denied"
)


@dataclasses.dataclass(frozen=True)
class Change:
    """A file that differs between two commits; ``status`` is "added", "modified" or "deleted".

    A rename is reported as the old path deleted and the new one added.
    """

    path: str
    status: str


def check_git_url(url: str) -> str:
    """The URL cleaned, or raises :class:`InvalidGitUrl` saying why it is refused.

    >>> check_git_url("  git@github.com:owner/repo.git ")
    'git@github.com:owner/repo.git'
    """
    cleaned = url.strip()
    shown = _shown(address_without_credentials(cleaned))
    if not cleaned:
        raise InvalidGitUrl(url=url, reason="it is empty")
    if cleaned.startswith("-"):
        raise InvalidGitUrl(url=shown, reason="it starts with '-', which git would read as an option")
    if _HELPER.match(cleaned):
        raise InvalidGitUrl(url=shown, reason="addresses of the form name::address can run commands")
    if any(ch.isspace() or not ch.isprintable() for ch in cleaned):
        raise InvalidGitUrl(url=shown, reason="it contains spaces or control characters")
    if "\\" in cleaned:
        raise InvalidGitUrl(url=shown, reason="it contains a backslash")
    if _SCHEME.match(cleaned):
        return _check_full_url(cleaned, shown)
    scp = _SCP.match(cleaned)
    if not scp:
        raise InvalidGitUrl(url=shown, reason="local paths and other forms are not accepted")
    if scp["user"].startswith("-") or scp["host"].startswith("-"):
        raise InvalidGitUrl(url=shown, reason="its user or host name starts with '-'")
    return cleaned


def clone(
    url: str,
    dest: Path,
    ref: str | None = None,
    timeout_s: float = 300,
    *,
    files: AppFiles,
    credentials: Credentials | None = None,
) -> str:
    """Shallow-clone ``ref`` (branch or tag; default branch if None) of ``url`` into ``dest``; returns the commit sha.

    ``dest``, in the data folder of ``files``, must not exist; it is recorded as the app's,
    and removed again if the clone fails. Credentials in ``url`` are used (unless
    ``credentials`` are given) and never kept in the clone.
    """
    url, found = split_credentials(check_git_url(url))
    ref = _check_ref(ref)
    branch = ["--branch", ref] if ref else []
    if dest.exists():
        raise GitFailed(url=url, detail=f"the folder {dest} already exists")
    files.claim(dest)
    git = _Git(url, timeout_s, credentials or found)
    try:
        git("clone", "--depth", "1", "--single-branch", "--no-tags", *branch, "--", url, str(dest))
        return _rev(git, dest, "HEAD")
    except AppError:
        # A killed clone leaves its half-written folder behind.
        files.remove(dest)
        raise


def update(
    repo: Path, ref: str | None = None, timeout_s: float = 300, credentials: Credentials | None = None
) -> tuple[str, str, list[Change]]:
    """Fetch the latest ``ref`` into an existing shallow clone and check it out; returns (old_sha, new_sha, changes).

    ``ref`` is the branch or tag the clone follows (None: the remote's default branch); pass
    the one given to :func:`clone`. Local edits and stray files in ``repo`` are discarded.
    Without ``credentials``, a private repository needs git's own credential helper.
    """
    fetched = _check_ref(ref) or "HEAD"
    git = _Git(str(repo), timeout_s, credentials)
    old = _rev(git, repo, "HEAD")
    git.url = check_git_url(git("remote", "get-url", "origin", repo=repo).decode())
    git("fetch", "--depth", "1", "--no-tags", "--", "origin", fetched, repo=repo)
    new = _rev(git, repo, "FETCH_HEAD")
    # The old commit's objects stay in the clone after a shallow fetch, so both trees can be compared.
    changes = _changes(git("diff-tree", "-r", "-z", "--no-renames", old, new, repo=repo)) if new != old else []
    git("checkout", "--force", "--detach", new, repo=repo)
    git("clean", "-ffdx", repo=repo)
    return old, new, changes


class _Git:
    """Runs git commands for one operation: one deadline, one address (without credentials) to
    name in errors, and the credentials to send to it, if any.
    """

    def __init__(self, url: str, timeout_s: float, credentials: Credentials | None = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.credentials = credentials

    def __call__(self, *args: str, repo: Path | None = None) -> bytes:
        """Run git with ``args``; returns its standard output, or raises GitFailed, GitTimeout or GitMissing."""
        where = ["--git-dir", str(repo / ".git"), "--work-tree", str(repo)] if repo else []
        # http only for an http URL, which check_git_url lets through for this machine alone;
        # an https server cannot redirect to plain http then.
        http = ["-c", "protocol.http.allow=always"] if self.url.startswith("http://") else []
        env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_ENV}
        # No prompt may wait for an answer that never comes. GIT_LFS_SKIP_SMUDGE keeps large
        # binaries (models, media) as small pointer files instead of downloading them.
        env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="echo", GCM_INTERACTIVE="never", GIT_LFS_SKIP_SMUDGE="1")
        if self.credentials and args[0] in {"clone", "fetch"} and self.url.startswith(("https://", "http://")):
            env.update(_auth_header(self.url, self.credentials, env))  # only the processes that talk to the server
        try:
            proc = subprocess.Popen(
                ["git", *_OPTIONS, *http, *where, *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Without a controlling terminal ssh cannot ask for passwords or host keys either;
                # the own process group lets a timeout end git's helpers too.
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise GitMissing() from exc
        try:
            out, err = proc.communicate(timeout=max(self.deadline - time.monotonic(), 0.001))
        except subprocess.TimeoutExpired:
            _kill(proc)
            raise GitTimeout(url=_shown(self.url), seconds=self.timeout_s) from None
        if proc.returncode:
            self._fail(err, proc.returncode)
        return out

    def _fail(self, stderr: bytes, returncode: int) -> None:
        said = stderr.decode("utf-8", "replace")
        if self.url.startswith(("https://", "http://")) and _NEEDS_CREDENTIALS.search(said):
            raise GitCredentialsNeeded(url=_shown(self.url), server=origin(self.url))
        raise GitFailed(url=_shown(self.url), detail=_shown(_last_message(stderr, returncode)))


def _auth_header(url: str, credentials: Credentials, env: dict[str, str]) -> dict[str, str]:
    """Git configuration, passed in the environment, that sends ``credentials`` to ``url`` as a header.

    The environment of a process is readable by its user alone, where the command line is shown
    to every user by ps; and nothing is written to the clone's config. The header is scoped to
    the repository's address, so git sends it nowhere else.
    """
    n = int(env.get("GIT_CONFIG_COUNT") or 0)  # add to configuration the user's environment may already pass
    return {
        "GIT_CONFIG_COUNT": str(n + 1),
        f"GIT_CONFIG_KEY_{n}": f"http.{url}.extraHeader",
        f"GIT_CONFIG_VALUE_{n}": f"Authorization: {credentials.basic_auth()}",
    }


def _rev(git: _Git, repo: Path, name: str) -> str:
    return git("rev-parse", "--verify", name + "^{commit}", repo=repo).decode().strip()


def _kill(proc: subprocess.Popen) -> None:
    # git hands transfers to helpers (git-remote-https, ssh) that hold the pipes open: end them all.
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    proc.communicate()


def _last_message(stderr: bytes, returncode: int) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    # git often ends with advice ("Please make sure you have the correct access rights…") after the error.
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    last = (errors or lines or [f"exit status {returncode}"])[-1]
    return last.removeprefix("fatal: ").removeprefix("error: ").rstrip(".")


def _changes(raw: bytes) -> list[Change]:
    # -z raw records: ":old_mode new_mode old_sha new_sha status" NUL path NUL.
    fields = raw.split(b"\0")
    changes = []
    for meta, path in zip(fields[0:-1:2], fields[1::2], strict=True):
        old_mode, new_mode = meta.lstrip(b":").split(b" ")[:2]
        # Mode 000000 means absent, 160000 a submodule, whose files are never checked out.
        before, after = old_mode not in {b"000000", b"160000"}, new_mode not in {b"000000", b"160000"}
        if before or after:
            status = "modified" if before and after else "deleted" if before else "added"
            changes.append(Change(os.fsdecode(path), status))
    return changes


def _check_ref(ref: str | None) -> str | None:
    ref = ref.strip() if ref else None
    if not ref:
        return None
    if ref.startswith("-"):
        raise InvalidGitRef(ref=ref, reason="it starts with '-', which git would read as an option")
    if (
        not _REF_CHARS.fullmatch(ref)
        or ref.startswith("/")
        or ref.endswith(("/", ".", ".lock"))
        or any(bad in ref for bad in ("..", "//", "@{"))
        or ref == "@"
    ):
        raise InvalidGitRef(ref=_shown(ref), reason="git does not allow these characters in a branch or tag name")
    return ref


def _check_full_url(url: str, shown: str) -> str:
    try:
        parts = urlsplit(url)
        host, user, _ = parts.hostname, parts.username, parts.port
    except ValueError:
        raise InvalidGitUrl(url=shown, reason="its host or port is malformed") from None
    if parts.scheme not in {"https", "ssh", "http"}:
        raise InvalidGitUrl(url=shown, reason=f"{parts.scheme}:// addresses are not accepted")
    if not host:
        raise InvalidGitUrl(url=shown, reason="it has no host name")
    if host.startswith("-") or (user or "").startswith("-"):
        raise InvalidGitUrl(url=shown, reason="its user or host name starts with '-'")
    if parts.scheme == "http" and not _loopback(host):
        raise InvalidGitUrl(url=shown, reason="plain http:// is only accepted for this machine (localhost)")
    if parts.path in {"", "/"}:
        raise InvalidGitUrl(url=shown, reason="it names no repository")
    return parts.scheme + url[len(parts.scheme) :]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown(text: str) -> str:
    """``text`` fit for a message: without credentials, control characters escaped."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in without_credentials(text))
