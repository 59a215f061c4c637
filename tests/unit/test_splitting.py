from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.knowledge.chunk_content import has_content
from core.knowledge.file_chunks import chunk_id
from core.knowledge.records import KnowledgeBase
from core.knowledge.splitting import SplitterSettings, embedded_text, split_document


def tokens(text: str) -> int:
    """A stand-in tokenizer: one token per word or CJK character, plus two special tokens."""
    return len(text.split()) + sum("\u4e00" <= ch <= "\u9fff" for ch in text) + 2


def test_chinese_text_splits_at_sentence_ends():
    text = "这是一个关于模型量化的句子，它说明了权重如何压缩。" * 20
    pieces = split_document(text, SplitterSettings(chunk_size=100, chunk_overlap=0))
    assert len(pieces) > 1
    assert all(p.text.endswith("。") for p in pieces)


def test_line_numbers_point_at_the_chunk():
    lines = [f"line {i} " + "word " * 12 for i in range(1, 41)]
    text = "\n".join(lines)
    for piece in split_document(text, SplitterSettings(chunk_size=200, chunk_overlap=50)):
        assert piece.text.splitlines()[0].strip() in lines[piece.start_line - 1]
        assert piece.text.splitlines()[-1].strip() in lines[piece.end_line - 1]


def test_markdown_chunks_carry_their_heading_path_and_stay_in_their_section():
    doc = (
        "# LMDeploy\n\nIntro text.\n\n## 量化\n\nAWQ 4bit.\n\n### KV cache\n\nint8.\n\n"
        "```python\n# not a heading\nprint(1)\n```\n\n## Serving\n\napi_server.\n"
    )
    pieces = split_document(doc, SplitterSettings(chunk_size=500, chunk_overlap=0), "markdown")
    assert [(p.heading, p.start_line) for p in pieces] == [
        ("LMDeploy", 1),
        ("LMDeploy > 量化", 5),
        ("LMDeploy > 量化 > KV cache", 9),
        ("LMDeploy > Serving", 18),
    ]
    assert "# not a heading" in pieces[2].text
    assert embedded_text(pieces[1]).startswith("LMDeploy > 量化\n")


def test_code_is_cut_at_function_boundaries():
    code = "\n\n".join(f"def f{i}(x):\n    return x * {i}\n" + "    # padding\n" * 8 for i in range(6))
    pieces = split_document(code, SplitterSettings(chunk_size=200, chunk_overlap=0), "python")
    assert all(p.text.lstrip().startswith("def ") for p in pieces)


def test_chunks_longer_than_the_model_reads_are_cut_again():
    text = "词" * 2000  # one long Chinese run with no punctuation
    pieces = split_document(text, SplitterSettings(chunk_size=1500, chunk_overlap=0), None, tokens, 256)
    assert len(pieces) > 1 and all(tokens(p.text) <= 256 for p in pieces)
    assert "".join(p.text for p in pieces) == text


@settings(max_examples=60, deadline=None)
@example(text="# a", size=20, unit="chars", language="markdown", limit=24)  # only a title: no chunks
@given(
    text=st.text(alphabet=st.sampled_from(list("ab 。，\n汉字xyz.#")), min_size=1, max_size=3000),
    size=st.integers(min_value=20, max_value=400),
    unit=st.sampled_from(["chars", "tokens"]),
    language=st.sampled_from([None, "markdown"]),
    limit=st.integers(min_value=24, max_value=300),
)
def test_chunks_respect_the_limits_and_cover_the_text(text, size, unit, language, limit):
    pieces = split_document(text, SplitterSettings(size, size // 4, unit), language, tokens, limit)
    assert all(tokens(embedded_text(p)) <= limit or tokens(p.text) <= 16 + 2 for p in pieces)
    if unit == "chars":
        # Past the size only by taking in markup, and then to twice the size at most.
        assert all(len(p.text) <= 2 * size for p in pieces)
    covered = "".join(p.text for p in pieces)
    # A document of only headings has nothing a question could be about, so no chunks (see
    # test_chunk_content); any other document is covered whole.
    if pieces or has_content(text, markup=language == "markdown"):
        for char in set(text) - {" ", "\n", "#", ".", "。", "，"}:
            assert char in covered
    assert all(1 <= p.start_line <= p.end_line <= text.count("\n") + 1 for p in pieces)
    assert all(text[p.start : p.start + len(p.text)] == p.text for p in pieces)


@given(text=st.text(min_size=1, max_size=200), path=st.text(min_size=1, max_size=30))
def test_chunk_ids_are_deterministic_and_depend_on_every_input(text, path):
    kb = KnowledgeBase("kb-1", "docs", "multilingual-e5-small-q4", {}, 0.0, 0.0)
    other_model = KnowledgeBase("kb-1", "docs", "all-minilm-l6-v2", {}, 0.0, 0.0)
    sig = SplitterSettings().signature()
    same = chunk_id(kb, "src", path, text, sig)
    assert same == chunk_id(kb, "src", path, text, sig)
    assert (
        len(
            {
                same,
                chunk_id(kb, "src2", path, text, sig),
                chunk_id(kb, "src", path + "x", text, sig),
                chunk_id(kb, "src", path, text + "x", sig),
                chunk_id(kb, "src", path, text, SplitterSettings(400).signature()),
                chunk_id(other_model, "src", path, text, sig),
            }
        )
        == 6
    )


def test_signature_changes_with_settings():
    assert SplitterSettings(500, 150).signature() != SplitterSettings(400, 150).signature()
    assert SplitterSettings(500, 150).signature() != SplitterSettings(500, 150, "tokens").signature()
