import json

import pytest

from core.embeddings.catalog import BUILTIN_EMBEDDINGS, EmbeddingRegistry, builtin_embedding, suggested_embedding
from core.embeddings.custom import served_row
from core.errors import UnknownModel
from core.models.catalog import BUILTIN_MODELS, EMBEDDED_KEY
from core.models.prompt_formats import PROMPT_FORMATS
from core.models.registry import ModelRegistry
from core.models.spec import ModelSpec

SEEDS = {"qwen2-7b-instruct", "gemma-2-9b-it", "meta-llama-3-8b-instruct", "xverse-7b-chat", "internlm-chat-7b"}


def test_catalog_has_the_embedded_default_and_the_five_seed_models():
    keys = [spec.key for spec in BUILTIN_MODELS]
    assert len(keys) == len(set(keys))
    assert {EMBEDDED_KEY, *SEEDS} <= set(keys)


@pytest.mark.parametrize("spec", BUILTIN_MODELS, ids=lambda s: s.key)
def test_every_row_is_complete(spec):
    assert spec.stop_tokens, "a model without stop tokens talks past its turn"
    assert spec.prompt_format is None or spec.prompt_format in PROMPT_FORMATS
    assert spec.licence
    if spec.source == "hub":
        assert spec.modelscope_id and spec.hf_id and spec.download_gb > 0
        assert spec.mem_int4_gb < spec.mem_int8_gb < spec.mem_bf16_gb


def test_user_rows_are_saved_and_survive_a_restart(tmp_path):
    registry = ModelRegistry(tmp_path / "custom.json")
    registry.add(
        ModelSpec(
            key="my-model",
            name="Mine",
            family="llama",
            source="local",
            params_b=1.0,
            local_path="/models/mine",
            stop_tokens=("</s>",),
        )
    )
    again = ModelRegistry(tmp_path / "custom.json").get("my-model")
    assert again.local_path == "/models/mine" and again.stop_tokens == ("</s>",)
    assert json.loads((tmp_path / "custom.json").read_text())[0]["key"] == "my-model"
    registry.remove("my-model")
    with pytest.raises(UnknownModel):
        registry.get("my-model")


@pytest.mark.parametrize("row", BUILTIN_EMBEDDINGS, ids=lambda r: r.key)
def test_every_embedding_row_has_a_licence_and_where_it_comes_from(row):
    assert row.licence in {"MIT", "Apache-2.0"}
    if row.bundled:
        assert row.package and row.hf_id
    else:
        assert row.modelscope_id and row.hf_id and row.download_gb > 0
    assert row.kind == "reranker" or row.dim > 0


def test_qwen3_embedding_row_follows_its_model_card():
    row = builtin_embedding("qwen3-embedding-0.6b")
    assert row.hf_id == row.modelscope_id == "Qwen/Qwen3-Embedding-0.6B"
    assert (row.dim, row.max_tokens, row.licence, row.download_gb) == (1024, 8192, "Apache-2.0", 1.2)
    # get_detailed_instruct on the card: no space after "Query:"; documents are embedded plain.
    assert row.query_prefix + "What is AWQ?" == (
        "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:What is AWQ?"
    )
    assert row.passage_prefix == ""
    m3 = builtin_embedding("bge-m3")
    assert (m3.dim, m3.max_tokens, m3.query_prefix, m3.licence) == (1024, 8192, "", "MIT")
    assert builtin_embedding("bge-reranker-v2-m3").licence == "Apache-2.0"


def test_new_knowledge_bases_get_a_gpu_model_only_where_a_gpu_runs_it():
    on_gpu, on_cpu = builtin_embedding(suggested_embedding(True)), builtin_embedding(suggested_embedding(False))
    assert on_gpu.key == "qwen3-embedding-0.6b" and on_gpu.languages == "multilingual" and not on_gpu.bundled
    assert on_cpu.key == "multilingual-e5-small-q4" and on_cpu.bundled


def test_embedding_rows_saved_before_served_rows_existed_still_load(tmp_path):
    path = tmp_path / "custom_embeddings.json"
    old = {"key": "mine", "name": "Mine", "backend": "sentence-transformers", "dim": 384, "max_tokens": 256}
    path.write_text(json.dumps([{**old, "languages": "en", "local_path": "/models/mine"}]))
    registry = EmbeddingRegistry(path)
    assert registry.get("mine").local_path == "/models/mine" and not registry.get("mine").served
    registry.add(served_row("http://localhost:8000/v1", "bge-m3", "Local bge"))
    again = EmbeddingRegistry(path).get("local-bge-served")
    assert again.served and again.base_url == "http://localhost:8000/v1" and again.api_model == "bge-m3"
