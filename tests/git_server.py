"""Serves bare git repositories over plain HTTP on 127.0.0.1 for tests, the way a real host does:
``git http-backend`` (git's smart HTTP protocol, as a CGI program) behind a small http.server,
optionally behind HTTP basic authentication, as a private repository is."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from tests.local_server import LocalServer, QuietHandler


class GitServer(LocalServer):
    """Serves every bare repository under ``root`` at ``url_for(name)``; use as a context manager.

    With ``auth`` (user, password) every request needs those credentials (HTTP basic), and is
    refused with 401 otherwise; ``requests`` lists (path, had the right credentials) of each.
    """

    def __init__(self, root: Path, auth: tuple[str, str] | None = None):
        self.root = root
        self.auth = auth
        self.requests: list[tuple[str, bool]] = []
        super().__init__()
        self.base_url = self.address

    def url_for(self, name: str) -> str:
        """The clone URL of the bare repository ``root/name``."""
        return f"{self.base_url}/{name}"

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            def do_GET(self):
                self._cgi()

            def do_POST(self):
                self._cgi()

            def _authorised(self) -> bool:
                if server.auth is None:
                    return True
                expected = "Basic " + base64.b64encode(":".join(server.auth).encode()).decode()
                return self.headers.get("Authorization") == expected

            def _cgi(self):
                authorised = self._authorised()
                server.requests.append((self.path, authorised))
                if not authorised:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="private"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                url = urlsplit(self.path)
                # git sends a Content-Length for bodies under http.postBuffer (1 MiB), which test
                # repositories never exceed; chunked uploads are not supported.
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                env = {
                    "PATH": os.environ.get("PATH", ""),
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "GATEWAY_INTERFACE": "CGI/1.1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": url.path,
                    "QUERY_STRING": url.query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "REMOTE_ADDR": self.client_address[0],
                    # Protocol v2 is negotiated through this header; a gzipped request body through the next.
                    "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                }
                proc = subprocess.Popen(
                    [shutil.which("git") or "git", "http-backend"],
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                )
                proc.stdin.write(body)
                proc.stdin.close()
                status, headers = 200, []
                while (line := proc.stdout.readline().rstrip(b"\r\n")) != b"":
                    key, _, value = line.decode("latin-1").partition(":")
                    if key.lower() == "status":
                        status = int(value.split()[0])
                    else:
                        headers.append((key, value.strip()))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.end_headers()
                # HTTP/1.0: the body ends when the connection closes, so it can be streamed as it comes.
                while chunk := proc.stdout.read1(65536):
                    self.wfile.write(chunk)
                proc.wait()

        return Handler


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` as a test user; returns its output."""
    out = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


class Upstream:
    """A working repository that pushes to a bare one the server publishes as ``project.git``."""

    def __init__(self, tmp: Path, server: GitServer):
        self.work = tmp / "work"
        self.url = server.url_for("project.git")
        git(tmp, "init", "-q", "--bare", "-b", "main", str(server.root / "project.git"))
        git(tmp, "init", "-q", "-b", "main", str(self.work))
        git(self.work, "remote", "add", "origin", str(server.root / "project.git"))

    def commit(self, files: dict[str, str | None], branch: str = "main") -> str:
        """Write (or, for None, delete) files, commit, push ``branch``; returns the commit sha."""
        for rel, text in files.items():
            path = self.work / rel
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", "change")
        git(self.work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        return git(self.work, "rev-parse", "HEAD")
