"""A small OpenAI-compatible chat server for tests: /v1/models and /v1/chat/completions, with
Server-Sent Events streaming as the OpenAI API sends them. It replies with a fixed text and
records every request body."""

from __future__ import annotations

import json
import time

from tests.local_server import LocalServer, QuietHandler


class OpenAIServer(LocalServer):
    """Runs on 127.0.0.1 on a free port; use as a context manager."""

    def __init__(
        self,
        model: str = "test-model",
        reply: str = "Hello from the server.",
        api_key: str | None = None,
        port: int = 0,
    ):
        self.model = model
        self.reply = reply
        self.api_key = api_key
        self.requests: list[dict] = []
        super().__init__(port)
        self.base_url = f"{self.address}/v1"

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            def _authorised(self) -> bool:
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._json(401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}})
                    return False
                return True

            def do_GET(self):
                if self.path == "/health":  # vLLM's and SGLang's readiness check
                    self._json(200, {})
                elif self.path == "/v1/models" and self._authorised():
                    self._json(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                elif self.path not in {"/v1/models", "/health"}:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self):
                if self.path != "/v1/chat/completions":
                    self._json(404, {"error": {"message": "not found"}})
                    return
                if not self._authorised():
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                words = server.reply.split(" ")
                pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
                base = {"id": "chatcmpl-1", "created": int(time.time()), "model": body["model"]}
                if not body.get("stream"):
                    self._json(
                        200,
                        {
                            **base,
                            "object": "chat.completion",
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": server.reply},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {
                                "prompt_tokens": 5,
                                "completion_tokens": len(pieces),
                                "total_tokens": 5 + len(pieces),
                            },
                        },
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces]
                for delta in deltas:
                    chunk = {
                        **base,
                        "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                last = {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                }
                self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()

        return Handler
