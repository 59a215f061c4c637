import json

import pytest

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
