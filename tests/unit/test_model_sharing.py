"""One model shared by every open page: unloading it under another page's answer is refused."""

import threading
import types

import pytest

from core.errors import ModelBusy
from core.models.decoder import Request
from core.models.engine import Engine
from core.models.manager import ModelManager
from core.models.registry import ModelRegistry


class _SlowModel:
    """Generates only when told to, so a test can look while an answer is being written."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def generate(self, **kwargs):
        self.release.wait(10)
        return kwargs["input_ids"]


def test_the_engine_counts_answers_being_written_and_queued():
    import torch

    model = _SlowModel()
    engine = Engine(model, fast=False)
    ids = torch.ones((1, 3), dtype=torch.long)
    futures = [engine.submit(Request(input_ids=ids, max_new_tokens=4, stop_ids=())) for _ in range(3)]
    assert engine.in_flight == 3  # one being written, two waiting their turn
    model.release.set()
    for future in futures:
        future.result(timeout=10)
    assert engine.in_flight == 0


def test_unloading_or_switching_a_model_that_is_writing_answers_is_refused_clearly(settings):
    manager = ModelManager(settings, ModelRegistry(settings.models_dir / "custom_models.json"))
    spec = types.SimpleNamespace(key="qwen2-7b-instruct", name="Qwen2-7B-Instruct")
    manager._resident = types.SimpleNamespace(spec=spec, engine=types.SimpleNamespace(in_flight=2))
    with pytest.raises(ModelBusy) as refused:
        manager.unload()
    assert "Qwen2-7B-Instruct is writing 2 answer(s)" in refused.value.message("en")
    with pytest.raises(ModelBusy):
        manager.load("smollm2-135m-instruct")  # switching models unloads this one first
    assert manager.current.spec is spec  # still loaded, the other answers go on
    manager._resident.engine.in_flight = 0
    manager.unload()
    assert manager.current is None
