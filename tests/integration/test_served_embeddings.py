"""A knowledge base embedded by a model on an OpenAI-compatible server, through the app's own
services, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import time

import pytest

from core.embeddings.custom import served_row
from core.embeddings.served import attach
from core.errors import EmbeddingDimensionMismatch, EmbeddingKeyMissing, EmbeddingKeyRefused, EndpointUnreachable
from core.knowledge.sources import FolderInput
from core.knowledge.splitting import SplitterSettings
from core.rag.retrieval import Searcher, SearchSettings
from core.services import build_services
from core.settings import Settings
from tests.embedding_server import EmbeddingServer


def _services(tmp_path, **settings):
    return build_services(Settings(data_dir=tmp_path / "data", **settings))


def _docs(root):
    root.mkdir()
    (root / "pasta.md").write_text("# Pasta\n\nBoil the pasta for ten minutes, then add the tomato sauce.\n")
    (root / "gpus.md").write_text("# Hardware\n\nThe server runs on two GPUs with 80 GB memory each.\n")
    return root


def _ingest(services, kb, root):
    job = services.jobs.wait(services.start_ingest(kb, FolderInput(root)).id, timeout=120)
    return job


def test_a_folder_ingested_through_a_served_model_is_searchable(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBED_KEY", "sk-test")
    with EmbeddingServer(api_key="sk-test") as server:
        services = _services(tmp_path, server_keys={server.address: "EMBED_KEY"})
        pool = services.knowledge.embeddings
        row = served_row(server.base_url, server.model, "Box", batch_size=1)
        row = attach(pool.registry, row, services.settings.server_keys)
        assert row.dim == 64 and pool.available(row)
        kb = services.knowledge.create("served", row.key, SplitterSettings())
        done = _ingest(services, kb, _docs(tmp_path / "docs"))
        assert done.status == "done", done.error
        assert services.knowledge.stats(kb).vectors == 2
        hits = Searcher(services.knowledge).search("tomato sauce", [kb], SearchSettings(k=1, threshold=0.0))
        assert hits[0].chunk.path == "pasta.md"
    assert all(body["encoding_format"] == "float" and len(body["input"]) == 1 for body in server.requests)


def test_a_server_that_is_not_running_is_reported_quickly(tmp_path):
    services = _services(tmp_path)
    started = time.perf_counter()
    with pytest.raises(EndpointUnreachable, match="did not answer"):
        attach(services.knowledge.embeddings.registry, served_row("http://127.0.0.1:9/v1", "anything"), {})
    assert time.perf_counter() - started < 10
    assert not [r for r in services.knowledge.embeddings.registry.all() if r.served]  # nothing recorded


def test_a_server_that_wants_a_key_says_which_variable_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBED_KEY", "sk-wrong")
    with EmbeddingServer(api_key="sk-right") as server:
        registry = _services(tmp_path).knowledge.embeddings.registry
        with pytest.raises(EmbeddingKeyMissing, match="HTTP 401"):
            attach(registry, served_row(server.base_url, server.model), {})
        with pytest.raises(EmbeddingKeyRefused, match="EMBED_KEY"):
            attach(registry, served_row(server.base_url, server.model), {server.address: "EMBED_KEY"})


def test_a_dimension_change_on_the_server_stores_nothing_and_keeps_the_earlier_content(tmp_path):
    with EmbeddingServer() as server:
        services = _services(tmp_path)
        row = attach(services.knowledge.embeddings.registry, served_row(server.base_url, server.model), {})
        kb = services.knowledge.create("served", row.key, SplitterSettings())
        root = _docs(tmp_path / "docs")
        assert _ingest(services, kb, root).status == "done"
        before = services.knowledge.stats(kb)

        server.dim = 32  # the server was restarted with another model behind the same name
        (root / "bread.md").write_text("# Bread\n\nBread dough rests for an hour before baking.\n")
        failed = _ingest(services, kb, root)
        assert failed.status == "failed"
        assert "vectors of 32 numbers, but it is recorded with 64" in failed.error_message("en")
        after = services.knowledge.stats(kb)
        assert (after.files, after.chunks, after.vectors) == (before.files, before.chunks, before.vectors)
        with pytest.raises(EmbeddingDimensionMismatch):  # nor can it search with the new vectors
            Searcher(services.knowledge).search("tomato sauce", [kb], SearchSettings(k=1))

        server.dim = 64
        hits = Searcher(services.knowledge).search("tomato sauce", [kb], SearchSettings(k=1, threshold=0.0))
        assert hits[0].chunk.path == "pasta.md"


def test_a_server_slower_than_the_rows_timeout_is_given_up_on(tmp_path):
    with EmbeddingServer() as server:
        services = _services(tmp_path)
        registry = services.knowledge.embeddings.registry
        row = attach(registry, served_row(server.base_url, server.model), {})
        registry.add(dataclasses.replace(row, timeout_s=0.5))
        kb = services.knowledge.create("served", row.key, SplitterSettings())
        server.delay_s = 3.0
        started = time.perf_counter()
        failed = _ingest(services, kb, _docs(tmp_path / "docs"))
        assert time.perf_counter() - started < 3.0
        assert failed.status == "failed" and "did not reply within 0.5 s" in failed.error_message("en")
        assert services.knowledge.stats(kb).vectors == 0
