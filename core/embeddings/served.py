"""Embedding models served elsewhere through the OpenAI embeddings API (``POST {base_url}/embeddings``):
vLLM, Text Embeddings Inference, Xinference, Ollama and others.

The API key comes only from an environment variable the configuration allows for that server
(``KBA_SERVER_KEYS``), by the same rule as chat-model servers (:func:`core.models.remote.api_key`).
Every reply is checked before its vectors are handed on: as many vectors as texts, each of the
dimension recorded for the row, so a misbehaving server raises a typed error and ingestion
writes nothing from that batch.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import httpx
import numpy as np
from langchain_core.embeddings import Embeddings

from core.credentials import Allowed, configured_secret, origin
from core.embeddings.catalog import EmbeddingRegistry, EmbeddingSpec
from core.embeddings.custom import DEFAULT_BATCH
from core.errors import (
    EmbeddingCountMismatch,
    EmbeddingDimensionMismatch,
    EmbeddingKeyMissing,
    EmbeddingKeyRefused,
    EmbeddingModelNotServed,
    EmbeddingReplyMalformed,
    EmbeddingServerFailed,
    EmbeddingServerTimeout,
    EndpointUnreachable,
)
from core.models.remote import api_key

# A server that does not accept the connection within this time is not running there; the
# reply itself may take the row's timeout_s (a batch on a busy CPU server is slow).
CONNECT_TIMEOUT_S = 5.0
# What the dimension is read from when a server is attached.
PROBE_TEXT = "dimension probe"


def attach(
    registry: EmbeddingRegistry,
    row: EmbeddingSpec,
    allowed: Allowed,
    transport: httpx.BaseTransport | None = None,
) -> EmbeddingSpec:
    """Ask the server for one vector, record the row with the dimension it has, and return it.

    A row already recorded under the same key keeps its knowledge bases' vectors, so a server
    that now answers with another dimension raises :class:`EmbeddingDimensionMismatch` and the
    recorded row is left as it was.
    """
    recorded = next((r for r in registry.all() if r.key == row.key and r.dim), None)
    probe = ServedEmbeddings(dataclasses.replace(row, dim=recorded.dim if recorded else 0), allowed, transport)
    try:
        probe.embed_query(PROBE_TEXT)
    finally:
        probe.close()
    attached = dataclasses.replace(row, dim=probe.dim)
    registry.add(attached)
    return attached


class ServedEmbeddings(Embeddings):
    """LangChain embeddings computed by an OpenAI-compatible server, L2-normalised here.

    ``dim`` is the row's recorded dimension; a row without one (0) takes it from the first
    reply, and every later reply must match it. Prefixes are added here, as for local models.
    """

    backend = "server"
    backend_reason = ""
    backend_note = ""

    def __init__(
        self,
        spec: EmbeddingSpec,
        allowed: Allowed,
        transport: httpx.BaseTransport | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        if not spec.base_url or not spec.api_model:
            raise ValueError(f"row {spec.key!r} names no server or model")
        self.spec = spec
        self.dim = spec.dim
        self.batch_size = spec.batch_size or batch_size
        self.query_prefix = spec.query_prefix
        self.passage_prefix = spec.passage_prefix
        self.device = origin(spec.base_url) or spec.base_url
        self.dtype = ""
        self._url = f"{spec.base_url.rstrip('/')}/embeddings"
        # The key by the chat servers' rule (raises ServerKeyNotAllowed for a variable the
        # configuration does not allow here); which variable it came from names the fix on a 401.
        value = api_key(spec, allowed)
        found = configured_secret({spec.base_url: spec.api_key_env} if spec.api_key_env else allowed, spec.base_url)
        self._variable = found[0] if found else None
        headers = {"Authorization": f"Bearer {value}"} if found else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(spec.timeout_s, connect=min(CONNECT_TIMEOUT_S, spec.timeout_s)),
            transport=transport,
        )

    def close(self) -> None:
        """Close the connections to the server."""
        self._client.close()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages, ``batch_size`` per request; raises before returning anything if any
        request fails, so a caller never holds vectors for part of ``texts``.
        """
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors.extend(self._embed([self.passage_prefix + t for t in texts[start : start + self.batch_size]]))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query."""
        return self._embed([self.query_prefix + text])[0]

    def _embed(self, texts: list[str]) -> list[list[float]]:
        body = {"model": self.spec.api_model, "input": texts, "encoding_format": "float"}
        try:
            reply = self._client.post(self._url, json=body)
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise EndpointUnreachable(url=self.spec.base_url, detail=type(exc).__name__) from exc
            raise EmbeddingServerTimeout(url=self.spec.base_url, seconds=self.spec.timeout_s) from exc
        except httpx.TransportError as exc:
            raise EndpointUnreachable(url=self.spec.base_url, detail=type(exc).__name__) from exc
        self._check_status(reply)
        try:
            payload = reply.json()
        except ValueError as exc:
            raise EmbeddingReplyMalformed(url=self.spec.base_url, detail="the body is not JSON") from exc
        matrix = self._vectors(payload, len(texts))
        if not self.dim:
            self.dim = matrix.shape[1]
        if matrix.shape[1] != self.dim:
            raise EmbeddingDimensionMismatch(name=self.spec.name, expected=self.dim, got=matrix.shape[1])
        # Normalised in float32 like the local models' vectors, whatever the server does.
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        return matrix.tolist()

    def _check_status(self, reply: httpx.Response) -> None:
        status = reply.status_code
        if status < 400:
            return
        url = self.spec.base_url
        if status in {401, 403}:
            if self._variable:
                raise EmbeddingKeyRefused(url=url, status=status, variable=self._variable)
            raise EmbeddingKeyMissing(url=url, status=status, server=self.device)
        if status == 404:
            raise EmbeddingModelNotServed(url=url, model=self.spec.api_model)
        raise EmbeddingServerFailed(url=url, status=status, detail=_error_text(reply))

    def _vectors(self, payload: Any, sent: int) -> np.ndarray:
        """The reply's vectors in input order, as a float32 matrix; raises on anything else."""
        url = self.spec.base_url
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise EmbeddingReplyMalformed(url=url, detail="no 'data' list")
        if len(data) != sent:
            raise EmbeddingCountMismatch(url=url, got=len(data), sent=sent)
        rows: dict[int, np.ndarray] = {}
        for position, item in enumerate(data):
            if not isinstance(item, dict) or "embedding" not in item:
                raise EmbeddingReplyMalformed(url=url, detail=f"item {position} has no 'embedding'")
            index = item.get("index", position)
            if not isinstance(index, int) or not 0 <= index < sent or index in rows:
                raise EmbeddingReplyMalformed(url=url, detail=f"item {position} has index {index!r}")
            rows[index] = _decode(item["embedding"], url, position)
        lengths = {len(v) for v in rows.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise EmbeddingReplyMalformed(url=url, detail=f"vectors of lengths {sorted(lengths)} in one reply")
        return np.stack([rows[i] for i in range(sent)])


def _decode(embedding: Any, url: str, position: int) -> np.ndarray:
    """One vector: a list of numbers, or base64 of little-endian float32 (the API's "base64"
    encoding, which some servers send whatever was asked).
    """
    try:
        if isinstance(embedding, str):
            vector = np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4").astype(np.float32)
        else:
            vector = np.asarray(embedding, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise EmbeddingReplyMalformed(url=url, detail=f"item {position} is not a vector of numbers") from exc
    if vector.ndim != 1 or not np.isfinite(vector).all():
        raise EmbeddingReplyMalformed(url=url, detail=f"item {position} is not a vector of finite numbers")
    return vector


def _error_text(reply: httpx.Response) -> str:
    """The server's own error message (OpenAI's {"error": {"message": ...}}, or others'), short."""
    try:
        body = reply.json()
    except ValueError:
        return reply.text[:200] or reply.reason_phrase
    if not isinstance(body, dict):
        return str(body)[:200]
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else error or body.get("message")
    return str(message or body)[:200]
