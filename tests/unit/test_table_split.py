"""The splitter's table rule: a table fits whole with its caption, or is cut between rows, each
chunk repeating the caption and the header."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from core.knowledge.splitting import SplitterSettings, split_document


def tokens(text: str) -> int:
    """A stand-in tokenizer: one token per word or CJK character, plus two special tokens."""
    return len(text.split()) + sum("\u4e00" <= ch <= "\u9fff" for ch in text) + 2


HEADER = "| region | quarter | sales |\n| --- | --- | --- |"


def _table(rows: int, caption: str = "Sales by region") -> str:
    lines = [f"| region {i} | Q{i % 4 + 1} | {i * 37} |" for i in range(rows)]
    return f"{caption}\n\n{HEADER}\n" + "\n".join(lines)


def _rows_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"\| region \d+ \|", line)]


def test_a_table_that_fits_stays_whole_with_its_caption():
    doc = "Intro paragraph about the figures.\n\n" + _table(3) + "\n\nClosing words after the table."
    pieces = split_document(doc, SplitterSettings(chunk_size=200, chunk_overlap=0), "markdown")
    tables = [p for p in pieces if "| region 0 |" in p.text]
    assert len(tables) == 1
    assert tables[0].text == _table(3)
    assert not any("| region" in p.text for p in pieces if p is not tables[0])


def test_a_long_table_is_cut_between_rows_and_every_chunk_repeats_caption_and_header():
    doc = "# Report\n\n" + _table(60)
    pieces = split_document(doc, SplitterSettings(chunk_size=300, chunk_overlap=100), "markdown")
    assert len(pieces) > 3
    for piece in pieces:
        assert "Sales by region" in piece.text.splitlines()
        assert HEADER in piece.text
        assert piece.heading == "Report"
    assert [row for p in pieces for row in _rows_in(p.text)] == _rows_in(doc)  # in order, once each


def test_chunks_of_rows_point_at_the_lines_of_their_rows():
    doc = _table(60)
    lines = doc.splitlines()
    for piece in split_document(doc, SplitterSettings(chunk_size=300, chunk_overlap=0), "markdown"):
        rows = _rows_in(piece.text)
        assert lines[piece.end_line - 1] == rows[-1]
        assert piece.start_line == 1 or lines[piece.start_line - 1] == rows[0]


def test_a_row_longer_than_a_chunk_stays_whole():
    long_row = "| region 1 | " + "very long note " * 40 + "| 5 |"
    doc = f"{HEADER}\n| region 0 | short | 1 |\n{long_row}\n| region 2 | short | 2 |"
    pieces = split_document(doc, SplitterSettings(chunk_size=120, chunk_overlap=0), "markdown")
    holding = [p for p in pieces if "very long note" in p.text]
    assert len(holding) == 1 and long_row in holding[0].text.splitlines() and HEADER in holding[0].text


def test_the_models_limit_cuts_between_rows_first():
    doc = _table(80, caption="Sales")
    pieces = split_document(doc, SplitterSettings(chunk_size=4000, chunk_overlap=0), "markdown", tokens, 64)
    assert len(pieces) > 2
    assert all(tokens(p.text) <= 64 and HEADER in p.text for p in pieces)
    assert [row for p in pieces for row in _rows_in(p.text)] == _rows_in(doc)


def test_a_header_wider_than_a_chunk_is_not_repeated_and_the_text_stays_bounded():
    header = "| " + " | ".join(f"column name {i}" for i in range(60)) + " |\n|" + " --- |" * 60
    doc = header + "\n" + "\n".join(f"| {i} |" for i in range(5000))
    pieces = split_document(doc, SplitterSettings(chunk_size=500, chunk_overlap=0), "markdown")
    assert sum(len(p.text) for p in pieces) < 1.2 * len(doc)
    assert header in pieces[0].text and not any("column name" in p.text for p in pieces[1:])
    assert sum(len(_numbers(p.text)) for p in pieces) == 5000


def test_repeating_a_wide_header_over_tiny_rows_at_most_triples_the_text():
    header = "| " + " | ".join(f"name {i}" for i in range(30)) + " |\n|" + " --- |" * 30  # 420 characters
    doc = header + "\n" + "\n".join(f"| {i} |" for i in range(20_000))
    pieces = split_document(doc, SplitterSettings(chunk_size=500, chunk_overlap=0), "markdown")
    assert all(header in p.text for p in pieces)
    assert sum(len(p.text) for p in pieces) < 3 * len(doc)


def _numbers(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[2:-2].isdigit()]


def test_tables_in_code_fences_and_in_code_are_left_to_the_usual_rules():
    fenced = "```\n" + _table(40, caption="x") + "\n```"
    pieces = split_document(fenced, SplitterSettings(chunk_size=300, chunk_overlap=0), "markdown")
    assert sum(HEADER in p.text for p in pieces) == 1
    code = "rows = '''\n" + _table(40, caption="x") + "\n'''\n"
    pieces = split_document(code, SplitterSettings(chunk_size=300, chunk_overlap=0), "python")
    assert sum(HEADER in p.text for p in pieces) == 1


def test_tables_in_plain_text_follow_the_rule_too():
    doc = "Page 3 of the report.\n\n" + _table(60)
    pieces = split_document(doc, SplitterSettings(chunk_size=300, chunk_overlap=50), None)
    assert all(HEADER in p.text for p in pieces if _rows_in(p.text))


_WORDS = st.text(alphabet=st.sampled_from(list("abcxyz 汉字数据12")), min_size=1, max_size=30).map(
    lambda s: " ".join(s.split()) or "v"
)


@settings(max_examples=80, deadline=None)
@given(
    header=st.lists(_WORDS, min_size=1, max_size=5),
    cells=st.lists(st.lists(_WORDS, min_size=1, max_size=5), min_size=1, max_size=60),
    caption=st.sampled_from(["", "Table 2: prices", "表 3 各地区销售额"]),
    before=st.sampled_from(["", "Some text before.\n\n", "# Section\n\n", "# A\n\nText here.\n\n"]),
    after=st.sampled_from(["", "\n\nText after the table.", "\n\n# Next\n\nMore."]),
    size=st.integers(min_value=80, max_value=600),
    overlap=st.integers(min_value=0, max_value=100),
    in_tokens=st.booleans(),
)
def test_no_chunk_of_a_table_lacks_its_header_and_every_row_lands_once_whole(
    header, cells, caption, before, after, size, overlap, in_tokens
):
    head = "| " + " | ".join(header) + " |\n|" + " --- |" * len(header)
    rows = [f"| r{i} | " + " | ".join(row) + " |" for i, row in enumerate(cells)]  # r{i}: each row unique
    table = (f"{caption}\n\n" if caption else "") + head + "\n" + "\n".join(rows)
    doc = before + table + after
    unit = "tokens" if in_tokens else "chars"
    pieces = split_document(doc, SplitterSettings(size, overlap, unit), "markdown", tokens, 512)
    length = len if unit == "chars" else tokens
    # Without a caption of its own, the table's caption is the short line before it, if any.
    last = before.strip().splitlines()[-1] if before.strip() else ""
    if not caption and last and not last.startswith("#") and length(last) <= size // 4:
        caption = last
    head_fits = length(f"{caption}\n{head}\n") <= size
    seen = []
    for piece in pieces:
        lines = piece.text.splitlines()
        # Never cut inside a row: every line that starts like a row is one whole row.
        assert all(line in rows for line in lines if line.startswith("| r") and line not in head)
        found = [line for line in lines if line in rows]
        seen.extend(found)
        if found and head_fits:
            assert head in piece.text
            assert not caption or caption in lines
    assert seen == rows
