from hypothesis import given, settings
from hypothesis import strategies as st

from core.knowledge.splitting import SplitterSettings, split_document


def test_chinese_text_splits_at_sentence_ends():
    sentence = "这是一个关于模型量化的句子，它说明了权重如何压缩。"
    text = sentence * 20
    pieces = split_document(text, SplitterSettings(chunk_size=100, chunk_overlap=0))
    assert len(pieces) > 1
    assert all(p.text.endswith("。") for p in pieces)


def test_line_numbers_point_at_the_chunk():
    lines = [f"line {i} " + "word " * 12 for i in range(1, 41)]
    text = "\n".join(lines)
    for piece in split_document(text, SplitterSettings(chunk_size=200, chunk_overlap=50)):
        first = lines[piece.start_line - 1]
        last = lines[piece.end_line - 1]
        assert piece.text.startswith(first.strip()[:10]) or first.strip() in piece.text or piece.text in first
        assert piece.text.splitlines()[-1].strip() in last


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab 。，\n汉字xyz.")), min_size=1, max_size=3000),
    size=st.integers(min_value=20, max_value=400),
)
def test_chunks_respect_the_size_and_cover_the_text(text, size):
    pieces = split_document(text, SplitterSettings(chunk_size=size, chunk_overlap=size // 4))
    assert all(len(p.text) <= size for p in pieces)
    covered = "".join(p.text for p in pieces)
    for char in set(text) - {" ", "\n"}:
        assert char in covered
    assert all(1 <= p.start_line <= p.end_line <= text.count("\n") + 1 for p in pieces)


def test_signature_changes_with_settings():
    assert SplitterSettings(500, 150).signature() != SplitterSettings(400, 150).signature()
