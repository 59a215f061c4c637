"""A small OpenAI-compatible embeddings server for tests: POST /v1/embeddings, answered as the
OpenAI API does (a list of {"object": "embedding", "index", "embedding"}, with base64 of
little-endian float32 when the request asks for it), with bag-of-words vectors so search works.
Its dimension, key and delay can change between requests; it records every request body."""

from __future__ import annotations

import base64
import json
import time

import numpy as np

from tests.fakes import HashEmbeddings
from tests.local_server import LocalServer, QuietHandler


class EmbeddingServer(LocalServer):
    """Runs on 127.0.0.1 on a free port; use as a context manager."""

    def __init__(self, model: str = "test-embedder", dim: int = 64, api_key: str | None = None) -> None:
        self.model = model
        self.dim = dim
        self.api_key = api_key
        self.delay_s = 0.0
        self.requests: list[dict] = []
        super().__init__()
        self.base_url = f"{self.address}/v1"

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            def _error(self, status: int, message: str, code: str) -> None:
                self._json(status, {"error": {"message": message, "type": "invalid_request_error", "code": code}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/embeddings":
                    self._error(404, f"Invalid URL (POST {self.path})", "not_found")
                    return
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._error(401, "Incorrect API key provided.", "invalid_api_key")
                    return
                if body.get("model") != server.model:
                    self._error(404, f"The model `{body.get('model')}` does not exist.", "model_not_found")
                    return
                server.requests.append(body)
                time.sleep(server.delay_s)
                texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
                vectors = HashEmbeddings(server.dim).embed_documents(texts)
                as_base64 = body.get("encoding_format") == "base64"
                data = [
                    {
                        "object": "embedding",
                        "index": i,
                        "embedding": base64.b64encode(np.asarray(v, "<f4").tobytes()).decode() if as_base64 else v,
                    }
                    for i, v in enumerate(vectors)
                ]
                tokens = sum(len(t.split()) for t in texts)
                usage = {"prompt_tokens": tokens, "total_tokens": tokens}
                self._json(200, {"object": "list", "data": data, "model": server.model, "usage": usage})

        return Handler
