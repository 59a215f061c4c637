"""Model hubs behind one small interface: list a repository's files, stream one from an offset.

The hub libraries list files and build URLs; the bytes are streamed here so a download can
report progress per chunk, stop between chunks and resume with an HTTP Range request. Every
network failure becomes :class:`HubUnreachable`, raised within seconds (5 s connect timeout).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

from core.credentials import address_without_credentials
from core.errors import AccessDenied, HubUnreachable, RepoNotFound

if TYPE_CHECKING:
    import requests

CHUNK_BYTES = 1 << 20
TIMEOUT = (5.0, 60.0)  # connect, read (seconds)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file of a repository; ``sha256`` is known for large (LFS) files."""

    path: str
    size: int
    sha256: str | None = None


@dataclasses.dataclass
class RemoteStream:
    """The body of one ranged GET.

    ``offset`` is where the chunks start: 0 when the server ignored the Range header, so the
    caller must start the file over.
    """

    offset: int
    total: int | None
    chunks: Iterator[bytes]
    close: Callable[[], None] = lambda: None


class HubClient(Protocol):
    """What the downloader needs from a hub (a fake implements it in tests)."""

    name: str

    def list_files(self, repo_id: str, revision: str | None = None) -> list[RemoteFile]:
        """All files of the repository at ``revision``."""
        ...

    def open(self, repo_id: str, path: str, revision: str | None = None, offset: int = 0) -> RemoteStream:
        """Stream ``path`` from byte ``offset``."""
        ...


def make_client(hub: str, endpoint: str | None = None) -> HubClient:
    """The client for ``hub`` ("modelscope" or "huggingface", optionally at a mirror ``endpoint``)."""
    return ModelScopeClient(endpoint) if hub == "modelscope" else HuggingFaceClient(endpoint)


def _range_start(status: int, headers, offset: int, hub: str) -> tuple[int, int | None]:
    if status == 206:
        match = _CONTENT_RANGE.fullmatch((headers.get("Content-Range") or "").strip())
        if not match or int(match.group(1)) != offset:
            raise HubUnreachable(hub=hub, detail="the server answered a different byte range")
        return offset, None if match.group(3) == "*" else int(match.group(3))
    length = headers.get("Content-Length")
    return 0, int(length) if length is not None else None


class ModelScopeClient:
    """ModelScope (modelscope.cn, or the endpoint in MODELSCOPE_ENDPOINT)."""

    name = "ModelScope"

    def __init__(self, endpoint: str | None = None) -> None:
        # modelscope_hub reads these once, when first imported: without them an unreachable
        # hub costs four listing attempts with back-off and a 10 s connect timeout each.
        os.environ.setdefault("MODELSCOPE_REPO_TREE_PAGE_MAX_ATTEMPTS", "1")
        os.environ.setdefault("MODELSCOPE_API_CONNECT_TIMEOUT", "5")
        import requests
        from modelscope_hub import HubApi, HubConfig

        config = HubConfig(endpoint=endpoint)
        host = urlparse(config.endpoint).hostname or ""
        official = host.removeprefix("www.") in {"modelscope.cn", "modelscope.ai"}
        self.name = "ModelScope" if official else address_without_credentials(config.endpoint)
        self._api = HubApi(config=config)
        self._session = requests.Session()
        if config.token:
            self._session.cookies.set("m_session_id", config.token, domain=host, path="/")
            self._session.headers["Authorization"] = f"Bearer {config.token}"

    def _error(self, exc: Exception, repo_id: str) -> Exception:
        import requests
        from modelscope_hub import errors

        if isinstance(exc, errors.NotExistError):
            return RepoNotFound(repo=repo_id, hub=self.name)
        if isinstance(exc, (errors.AuthenticationError, errors.PermissionDeniedError)):
            return AccessDenied(repo=repo_id, hub=self.name)
        if isinstance(exc, (errors.HubError, requests.RequestException, OSError)):
            return HubUnreachable(hub=self.name, detail=type(exc).__name__)
        return exc

    def list_files(self, repo_id: str, revision: str | None = None) -> list[RemoteFile]:
        """All files of the repository (revision "master" by default)."""
        try:
            infos = self._api.list_repo_files(repo_id, "model", revision=revision or "master", recursive=True)
        except Exception as exc:
            raise self._error(exc, repo_id) from exc
        files = [RemoteFile(f.path, int(f.size or 0), f.sha256 or None) for f in infos if not f.is_dir]
        if not files:  # an error reply without data parses as an empty listing
            raise RepoNotFound(repo=repo_id, hub=self.name)
        return files

    def open(self, repo_id: str, path: str, revision: str | None = None, offset: int = 0) -> RemoteStream:
        """Stream one file from ``offset``."""
        from modelscope_hub import errors

        url = self._api.legacy.get_download_url(repo_id, "model", path, revision or "master")
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
        try:
            response = self._session.get(url, headers=headers, stream=True, timeout=TIMEOUT)
            if response.status_code == 416:
                response.close()
                return RemoteStream(offset, None, iter(()))
            errors.raise_for_status(response)
            start, total = _range_start(response.status_code, response.headers, offset, self.name)
        except Exception as exc:
            raise self._error(exc, repo_id) from exc

        return RemoteStream(start, total, response_chunks(response, self.name), response.close)


class HuggingFaceClient:
    """Hugging Face, or a mirror of it such as https://hf-mirror.com."""

    name = "Hugging Face"

    def __init__(self, endpoint: str | None = None) -> None:
        import httpx
        from huggingface_hub import HfApi, constants

        self.endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
        official = urlparse(self.endpoint).hostname in {"huggingface.co", "hf.co"}
        # Errors name the mirror itself: "Cannot reach Hugging Face" sends people to the wrong place.
        self.name = "Hugging Face" if official else address_without_credentials(self.endpoint)
        # A third-party mirror never gets the user's Hugging Face token.
        self._token: str | bool | None = None if official else False
        self._api = HfApi(endpoint=self.endpoint, token=self._token)
        self._timeout = httpx.Timeout(TIMEOUT[1], connect=TIMEOUT[0])
        self._http = httpx.Client(follow_redirects=True, timeout=self._timeout)
        self._commits: dict[tuple[str, str | None], str] = {}
        self._lock = threading.Lock()

    def _error(self, exc: Exception, repo_id: str) -> Exception:
        import httpx
        from huggingface_hub import errors

        # Subclasses first: GatedRepoError is a RepositoryNotFoundError.
        if isinstance(exc, errors.OfflineModeIsEnabled):
            return HubUnreachable(hub=self.name, detail="HF_HUB_OFFLINE is set")
        if isinstance(exc, (errors.GatedRepoError, errors.DisabledRepoError)):
            return AccessDenied(repo=repo_id, hub=self.name)
        if isinstance(exc, (errors.RepositoryNotFoundError, errors.RevisionNotFoundError)):
            return RepoNotFound(repo=repo_id, hub=self.name)
        if isinstance(exc, errors.HfHubHTTPError) and exc.response.status_code in {401, 403}:
            return AccessDenied(repo=repo_id, hub=self.name)
        if isinstance(exc, (errors.HfHubHTTPError, httpx.HTTPError, OSError)):
            return HubUnreachable(hub=self.name, detail=type(exc).__name__)
        return exc

    def _check_online(self) -> None:
        from huggingface_hub import constants

        if constants.is_offline_mode():
            raise HubUnreachable(hub=self.name, detail="HF_HUB_OFFLINE is set")

    def list_files(self, repo_id: str, revision: str | None = None) -> list[RemoteFile]:
        """All files of the repository; later file URLs are pinned to the listed commit."""
        self._check_online()
        try:
            info = self._api.model_info(repo_id, revision=revision, files_metadata=True, timeout=self._timeout)
        except Exception as exc:
            raise self._error(exc, repo_id) from exc
        with self._lock:
            self._commits[(repo_id, revision)] = info.sha
        return [RemoteFile(s.rfilename, int(s.size or 0), s.lfs.sha256 if s.lfs else None) for s in info.siblings or ()]

    def open(self, repo_id: str, path: str, revision: str | None = None, offset: int = 0) -> RemoteStream:
        """Stream one file from ``offset``."""
        import httpx
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

        self._check_online()
        with self._lock:
            pinned = self._commits.get((repo_id, revision)) or revision or "main"
        headers = build_hf_headers(token=self._token, headers={"Accept-Encoding": "identity"})
        if offset:
            headers["Range"] = f"bytes={offset}-"
        stream = self._http.stream(
            "GET", hf_hub_url(repo_id, path, revision=pinned, endpoint=self.endpoint), headers=headers
        )
        try:
            response = stream.__enter__()
            close = lambda: stream.__exit__(None, None, None)  # noqa: E731
            if response.status_code == 416:
                close()
                return RemoteStream(offset, None, iter(()))
            hf_raise_for_status(response)
            start, total = _range_start(response.status_code, response.headers, offset, self.name)
        except Exception as exc:
            with contextlib.suppress(Exception):
                stream.__exit__(None, None, None)
            raise self._error(exc, repo_id) from exc

        def chunks() -> Iterator[bytes]:
            try:
                yield from (c for c in response.iter_raw(CHUNK_BYTES) if c)
            except httpx.HTTPError as exc:
                raise HubUnreachable(hub=self.name, detail=type(exc).__name__) from exc
            finally:
                close()

        return RemoteStream(start, total, chunks(), close)


def response_chunks(response: requests.Response, hub: str) -> Iterator[bytes]:
    """The body of a streamed ``requests`` response, piece by piece; a connection dropped
    mid-file becomes :class:`HubUnreachable`, from which the download resumes.
    """
    import requests

    try:
        yield from (c for c in response.iter_content(CHUNK_BYTES) if c)
    except requests.RequestException as exc:
        raise HubUnreachable(hub=hub, detail=type(exc).__name__) from exc
    finally:
        response.close()
