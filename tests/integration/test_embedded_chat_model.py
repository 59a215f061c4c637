import time

from core.models import embedded, loader
from core.models.loader import LoadOptions


def test_first_load_converts_once_and_later_loads_read_the_folder(real_services, smollm, monkeypatch):
    folder = real_services.settings.models_dir / "smollm2-135m-instruct"
    assert embedded.is_converted(folder)

    def no_gguf():
        raise AssertionError("the GGUF file must not be read again")

    monkeypatch.setattr(embedded, "gguf_file", no_gguf)
    started = time.perf_counter()
    again = loader.load(smollm.spec, real_services.settings, LoadOptions())
    assert again.path == folder
    assert time.perf_counter() - started < 20


def test_chat_model_answers_and_streams(real_services, smollm):
    llm = real_services.models.chat_model(max_new_tokens=24, temperature=0)
    pieces = [chunk.content for chunk in llm.stream("What is the capital of France?")]
    assert len([p for p in pieces if p]) > 1
    reply = "".join(pieces)
    assert "Paris" in reply
    assert "<|im_end|>" not in reply and "<|im_start|>" not in reply


def test_chat_model_is_not_reloaded_for_a_second_caller(real_services, smollm):
    assert real_services.models.load(real_services.settings.default_model) is smollm
