"""Embedding models on an OpenAI-compatible server, with the HTTP boundary faked by httpx.MockTransport."""

from __future__ import annotations

import base64
import dataclasses
import json

import httpx
import numpy as np
import pytest

from core.app_files import AppFiles
from core.embeddings.catalog import EmbeddingRegistry
from core.embeddings.custom import served_row
from core.embeddings.pool import EmbeddingPool
from core.embeddings.served import ServedEmbeddings, attach
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
    InvalidEndpoint,
    ServerKeyNotAllowed,
)
from core.knowledge import vectors
from core.knowledge.bases import KnowledgeBases
from core.knowledge.ingest import Ingestion
from core.knowledge.records import Records
from core.knowledge.sources import FolderInput, prepare
from core.knowledge.splitting import SplitterSettings
from core.rag.retrieval import Searcher, SearchSettings
from tests.fakes import HashEmbeddings

URL = "http://gpu-box:8000/v1"


class FakeServer:
    """POST /v1/embeddings answered as OpenAI does, with bag-of-words vectors of ``dim`` numbers.

    ``fail`` (a response, or an exception to raise) replaces the answer from the ``fail_from``-th
    request on; ``shuffle`` sends the items out of order, as the API allows (each has its index).
    """

    def __init__(self, dim: int = 64, key: str | None = None) -> None:
        self.dim = dim
        self.key = key
        self.requests: list[tuple[httpx.Request, dict]] = []
        self.fail: httpx.Response | Exception | None = None
        self.fail_from = 1
        self.shuffle = False
        self.base64 = False

    def _encode(self, vector: list[float]) -> list[float] | str:
        return base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode() if self.base64 else vector

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append((request, body))
        if self.fail is not None and len(self.requests) >= self.fail_from:
            if isinstance(self.fail, Exception):
                raise self.fail
            return self.fail
        if request.url.path != "/v1/embeddings":
            return httpx.Response(404, json={"error": {"message": "Not Found"}})
        if self.key and request.headers.get("authorization") != f"Bearer {self.key}":
            return httpx.Response(401, json={"error": {"message": "Incorrect API key provided"}})
        vectors = HashEmbeddings(self.dim).embed_documents(body["input"])
        data = [{"object": "embedding", "index": i, "embedding": self._encode(v)} for i, v in enumerate(vectors)]
        if self.shuffle:
            data.reverse()
        usage = {"prompt_tokens": 3 * len(vectors), "total_tokens": 3 * len(vectors)}
        return httpx.Response(200, json={"object": "list", "data": data, "model": body["model"], "usage": usage})


@pytest.fixture
def server():
    return FakeServer()


def _embeddings(server, allowed=None, **changes) -> ServedEmbeddings:
    row = dataclasses.replace(served_row(URL, "bge-m3"), **changes)
    return ServedEmbeddings(row, allowed or {}, server.transport())


def test_requests_follow_the_openai_embeddings_api_and_vectors_come_back_in_input_order(server):
    server.shuffle = True
    embeddings = _embeddings(server, batch_size=2, query_prefix="query: ", passage_prefix="passage: ")
    texts = ["tomato sauce", "pasta water", "bread dough"]
    got = embeddings.embed_documents(texts)
    request, body = server.requests[0]
    assert request.method == "POST" and str(request.url) == f"{URL}/embeddings"
    assert body == {
        "model": "bge-m3",
        "input": ["passage: tomato sauce", "passage: pasta water"],
        "encoding_format": "float",
    }
    assert [len(b["input"]) for _, b in server.requests] == [2, 1]  # the row's batch size
    assert "authorization" not in request.headers  # no key configured, none sent
    expected = HashEmbeddings(64).embed_documents(["passage: " + t for t in texts])
    assert np.allclose(got, expected, atol=1e-6)
    assert np.allclose(embeddings.embed_query("sauce"), HashEmbeddings(64).embed_query("query: sauce"), atol=1e-6)
    assert embeddings.dim == 64


def test_base64_vectors_are_decoded_as_little_endian_float32(server):
    server.base64 = True
    got = _embeddings(server).embed_documents(["tomato sauce"])
    assert np.allclose(got, HashEmbeddings(64).embed_documents(["tomato sauce"]), atol=1e-6)


def test_the_key_comes_only_from_a_variable_allowed_for_that_server(monkeypatch):
    monkeypatch.setenv("EMBED_KEY", "sk-right")
    monkeypatch.setenv("OTHER_KEY", "sk-other")
    server = FakeServer(key="sk-right")
    allowed = {"http://gpu-box:8000": "EMBED_KEY", "https://elsewhere.example": "OTHER_KEY"}
    assert _embeddings(server, allowed).embed_query("hi")
    assert server.requests[-1][0].headers["authorization"] == "Bearer sk-right"
    with pytest.raises(ServerKeyNotAllowed, match="OTHER_KEY"):
        _embeddings(server, allowed, api_key_env="OTHER_KEY")
    assert len(server.requests) == 1  # refused before anything was sent


def test_a_refused_key_names_its_variable_and_a_missing_one_says_how_to_allow_it(monkeypatch):
    monkeypatch.setenv("EMBED_KEY", "sk-wrong")
    server = FakeServer(key="sk-right")
    with pytest.raises(EmbeddingKeyRefused, match="environment variable EMBED_KEY"):
        _embeddings(server, {URL: "EMBED_KEY"}).embed_query("hi")
    with pytest.raises(EmbeddingKeyMissing, match="KBA_SERVER_KEYS") as caught:
        _embeddings(server).embed_query("hi")
    assert "http://gpu-box:8000" in caught.value.message("zh")
    server.fail = httpx.Response(403, json={"error": {"message": "forbidden"}})
    with pytest.raises(EmbeddingKeyRefused, match="HTTP 403"):
        _embeddings(server, {URL: "EMBED_KEY"}).embed_query("hi")


def test_a_wrong_model_or_url_says_what_to_check(server):
    server.fail = httpx.Response(404, json={"error": {"message": "The model `bge-m4` does not exist."}})
    with pytest.raises(EmbeddingModelNotServed, match=r"no embedding model 'bge-m3'.*/v1"):
        _embeddings(server).embed_query("hi")


def test_other_server_errors_carry_the_servers_own_message(server):
    server.fail = httpx.Response(400, json={"object": "error", "message": "input is too long (9000 > 8192 tokens)"})
    with pytest.raises(EmbeddingServerFailed, match=r"HTTP 400 \(input is too long.*smaller chunks"):
        _embeddings(server).embed_documents(["x" * 100])


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx.ConnectError("Connection refused"), EndpointUnreachable),
        (httpx.ConnectTimeout("no answer"), EndpointUnreachable),
        (httpx.ReadTimeout("too slow"), EmbeddingServerTimeout),
    ],
)
def test_network_failures_become_errors_that_say_what_happened(server, error, expected):
    server.fail = error
    with pytest.raises(expected) as caught:
        _embeddings(server, timeout_s=7.5).embed_documents(["hi"])
    assert URL in str(caught.value)
    if expected is EmbeddingServerTimeout:
        assert "within 7.5 s" in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (httpx.Response(200, text="<html>proxy login</html>"), "not JSON"),
        (httpx.Response(200, json={"object": "list"}), "no 'data' list"),
        (httpx.Response(200, json={"data": [{"index": 0, "vector": [1.0]}]}), "no 'embedding'"),
        (httpx.Response(200, json={"data": [{"index": 0, "embedding": ["a", "b"]}]}), "not a vector of numbers"),
        (httpx.Response(200, content=b'{"data": [{"index": 0, "embedding": [1.0, NaN]}]}'), "finite"),
        (httpx.Response(200, json={"data": [{"index": 0, "embedding": "not base64!"}]}), "not a vector of numbers"),
        (httpx.Response(200, json={"data": [{"index": 3, "embedding": [1.0]}]}), "index 3"),
    ],
)
def test_malformed_replies_are_refused(server, reply, detail):
    server.fail = reply
    with pytest.raises(EmbeddingReplyMalformed, match=detail):
        _embeddings(server).embed_documents(["hi"])


def test_a_reply_with_another_number_of_vectors_is_refused(server):
    server.fail = httpx.Response(200, json={"object": "list", "data": [{"index": 0, "embedding": [1.0, 0.0]}]})
    with pytest.raises(EmbeddingCountMismatch, match="returned 1 vectors for 2 texts"):
        _embeddings(server).embed_documents(["one", "two"])


def test_vectors_of_another_dimension_than_recorded_are_refused(server):
    embeddings = _embeddings(server, dim=128)
    with pytest.raises(EmbeddingDimensionMismatch, match="vectors of 64 numbers, but it is recorded with 128"):
        embeddings.embed_documents(["hi"])
    learning = _embeddings(server)  # no dimension recorded: the first reply sets it
    learning.embed_query("hi")
    server.dim = 32
    with pytest.raises(EmbeddingDimensionMismatch):
        learning.embed_query("hi")


def test_attach_records_the_dimension_and_keeps_a_recorded_one(tmp_path, server):
    registry = EmbeddingRegistry(tmp_path / "custom_embeddings.json")
    row = served_row(URL, "bge-m3", "GPU box", batch_size=16, query_prefix="query: ")
    attached = attach(registry, row, {}, server.transport())
    assert attached.dim == 64 and attached.key == "gpu-box-served"
    again = EmbeddingRegistry(tmp_path / "custom_embeddings.json").get("gpu-box-served")
    assert (again.dim, again.base_url, again.api_model, again.batch_size, again.query_prefix) == (
        64,
        URL,
        "bge-m3",
        16,
        "query: ",
    )
    assert again.served and again.licence and "estimated" in again.notes
    server.dim = 32  # the server now runs another model: the knowledge bases keep 64-number vectors
    with pytest.raises(EmbeddingDimensionMismatch):
        attach(registry, row, {}, server.transport())
    assert registry.get("gpu-box-served").dim == 64


def test_an_address_with_credentials_in_it_is_refused():
    with pytest.raises(InvalidEndpoint, match="KBA_SERVER_KEYS"):
        served_row("http://me:sk-secret@gpu-box:8000/v1", "bge-m3")


def _bases(tmp_path, settings, server) -> KnowledgeBases:
    settings.ensure_dirs()
    registry = EmbeddingRegistry(settings.models_dir / "custom_embeddings.json")
    pool = EmbeddingPool(
        registry, settings.models_dir, batch_size=2, builder=lambda spec, batch, folder: ServedEmbeddings(
            spec, {}, server.transport(), batch
        )
    )  # fmt: skip
    files = AppFiles(settings.data_dir)
    return KnowledgeBases(Records(settings.db_path), vectors.open_store(settings), pool, tmp_path / "src", files)


def _ingest(bases, kb, root):
    ready = prepare(bases, kb, FolderInput(root))
    return Ingestion(bases, kb, ready.source, ready.root, max_file_bytes=10**6, embed_batch=2).run()


def _state(bases, kb):
    records = sorted((c.path, c.text) for c in bases.records.chunks(kb.id))
    return records, bases.stats(kb).files


def test_a_failure_mid_ingestion_leaves_the_knowledge_base_as_it_was(tmp_path, settings, server):
    bases = _bases(tmp_path, settings, server)
    attach(bases.embeddings.registry, served_row(URL, "bge-m3", "GPU box"), {}, server.transport())
    kb = bases.create("served", "gpu-box-served", SplitterSettings(60, 0))
    root = tmp_path / "docs"
    root.mkdir()
    (root / "pasta.md").write_text("Boil the pasta for ten minutes, then add the tomato sauce.\n")
    _ingest(bases, kb, root)
    before = _state(bases, kb)
    vectors_before = bases.stats(kb).vectors

    # Many chunks, so the group is embedded in several requests; the second one fails.
    (root / "bread.md").write_text("\n\n".join(f"Bread dough number {i} rests for an hour." for i in range(8)))
    server.fail, server.fail_from = httpx.ReadTimeout("slow"), len(server.requests) + 2
    with pytest.raises(EmbeddingServerTimeout):
        _ingest(bases, kb, root)
    server.fail = None
    assert _state(bases, kb) == before
    hits = Searcher(bases).search("bread dough", [kb], SearchSettings(k=4, threshold=0.0))
    assert {h.chunk.path for h in hits} == {"pasta.md"}

    # A server now answering with another dimension: nothing from that batch is stored at all.
    stored = bases.stats(kb).vectors
    server.dim = 32
    with pytest.raises(EmbeddingDimensionMismatch):
        _ingest(bases, kb, root)
    assert _state(bases, kb) == before and bases.stats(kb).vectors == stored
    assert vectors_before <= stored  # whole batches embedded before a failure are kept for the next run

    server.dim = 64
    report = _ingest(bases, kb, root)
    assert report.files_ingested == 1
    assert bases.stats(kb).chunks == bases.stats(kb).vectors
    assert Searcher(bases).search("bread dough", [kb], SearchSettings(k=1, threshold=0.0))[0].chunk.path == "bread.md"
