"""A small Hugging Face-compatible hub on 127.0.0.1 for tests: the model-info API and file
downloads with HTTP Range, sending slowly on request so a download can be interrupted."""

from __future__ import annotations

import hashlib
import json
import re
import time
from http.server import BaseHTTPRequestHandler

from tests.local_server import LocalServer, QuietHandler

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class HubServer(LocalServer):
    """Serves ``files`` (path -> bytes) as repository ``repo``; ``delay`` seconds per 64 KiB sent."""

    def __init__(self, repo: str, files: dict[str, bytes], delay: float = 0.0) -> None:
        self.repo = repo
        self.files = files
        self.delay = delay
        self.ranges: list[str | None] = []
        super().__init__()
        self.endpoint = self.address

    def _info(self) -> dict:
        siblings = []
        for path, data in self.files.items():
            sibling = {"rfilename": path, "size": len(data)}
            if len(data) > 1000:  # large files are LFS files, with a SHA-256
                sibling["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 130}
            siblings.append(sibling)
        return {"id": self.repo, "sha": "0" * 40, "siblings": siblings}

    def _handler(self):
        hub = self

        class Handler(QuietHandler):
            def do_GET(self):
                path = self.path.split("?")[0]
                if path.startswith(f"/api/models/{hub.repo}"):
                    body = json.dumps(hub._info()).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                match = _RESOLVE.match(path)
                if not match or match["repo"] != hub.repo or match["path"] not in hub.files:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return
                wanted = self.headers.get("Range")
                hub.ranges.append(wanted)
                send_ranged(self, hub.files[match["path"]], wanted, hub.delay, 65536)

        return Handler


def send_ranged(handler: BaseHTTPRequestHandler, data: bytes, wanted: str | None, delay: float, step: int) -> None:
    """Answer a GET with ``data`` from the start of the ``Range`` header ``wanted`` (all of it
    when None), ``step`` bytes at a time with ``delay`` seconds between, as a slow server would.
    """
    start = int(wanted.removeprefix("bytes=").split("-")[0]) if wanted else 0
    handler.send_response(206 if wanted else 200)
    if wanted:
        handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
    handler.send_header("Content-Length", str(len(data) - start))
    handler.end_headers()
    for offset in range(start, len(data), step):
        try:
            handler.wfile.write(data[offset : offset + step])
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        time.sleep(delay)
