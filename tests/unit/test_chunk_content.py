import bisect
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document

from core.knowledge.chunk_content import has_content
from core.knowledge.splitting import SplitterSettings, split_document
from core.rag.context import source_label

# Lines that make up Markdown and reStructuredText documents: prose, code and every kind of
# markup that made empty chunks before (fences, headings, underlines, rules, tags, tables).
_LINES = [
    "LMDeploy 支持 AWQ 4bit 权重量化。",
    "Start the api_server with one command.",
    "print(model.generate(prompt))",
    "# not a heading inside code",
    "```",
    "```python",
    "# FAQ",
    "## 安装",
    "Install",
    "=======",
    "-------",
    "---",
    "</details>",
    '<div align="center">',
    "| :--- | :---: |",
    "",
]


def _fenced(text: str, at: int) -> bool:
    fences = [m.start(1) for m in re.finditer(r"^[ \t]*(```|~~~)", text, re.MULTILINE)]
    return bisect.bisect_left(fences, at) % 2 == 1


def _uncovered(text, pieces):
    """The runs of ``text`` that no piece covers, with their offsets."""
    covered = [False] * len(text)
    for p in pieces:
        covered[p.start : p.start + len(p.text)] = [True] * len(p.text)
    runs = re.finditer(r"0+", "".join("1" if c else "0" for c in covered))
    return [(m.start(), text[m.start() : m.end()]) for m in runs]


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(st.sampled_from(_LINES), min_size=1, max_size=80),
    size=st.integers(min_value=30, max_value=300),
    language=st.sampled_from(["markdown", "rst"]),
)
# Joining an underline to the chunk before once turned that chunk's last line into a title.
@example(lines=["# not a heading inside code", "Install", "======="], size=35, language="markdown")
# Repeated lines once put a chunk at an earlier copy of its text, leaving its own place uncovered.
@example(lines=["```", "# FAQ", "# FAQ", "LMDeploy 支持 AWQ 4bit 权重量化。"], size=30, language="markdown")
@example(lines=["LMDeploy 支持 AWQ 4bit 权重量化。"] * 4, size=54, language="markdown")
def test_no_chunk_is_only_markup_and_nothing_with_content_is_left_out(lines, size, language):
    text = "\n".join(lines)
    pieces = split_document(text, SplitterSettings(size, size // 4), language)

    for p in pieces:
        assert text[p.start : p.start + len(p.text)] == p.text
        assert has_content(p.text, in_fence=_fenced(text, p.start)), p.text
    for at, run in _uncovered(text, pieces):
        assert not has_content(run, in_fence=_fenced(text, at)), run
    places = [source_label(Document(p.text, metadata=_metadata(p))) for p in pieces]
    assert len(places) == len(set(places))


def _metadata(piece):
    columns = piece.columns or (None, None)
    return {
        "path": "a.md",
        "start_line": piece.start_line,
        "end_line": piece.end_line,
        "start_col": columns[0],
        "end_col": columns[1],
    }


def test_a_lone_closing_fence_joins_the_code_it_closes():
    code = "\n".join(f"step_{i} = run({i})  # stage {i}" for i in range(14))
    doc = f"# Quantize\n\nRun this:\n\n```python\n{code}\n```\n\n## Serve\n\nThen serve the model.\n"
    pieces = split_document(doc, SplitterSettings(chunk_size=200, chunk_overlap=0), "markdown")
    assert all(p.text.strip() != "```" for p in pieces)
    assert any(p.text.rstrip().endswith("step_13 = run(13)  # stage 13\n```") for p in pieces)


def test_a_heading_only_section_joins_the_section_under_it():
    doc = "# FAQ\n\n## How do I install it?\n\npip install lmdeploy\n"
    pieces = split_document(doc, SplitterSettings(chunk_size=500, chunk_overlap=0), "markdown")
    assert [(p.heading, p.text.splitlines()[0]) for p in pieces] == [("FAQ > How do I install it?", "# FAQ")]


def test_rst_titles_stay_with_their_underline():
    sections = [
        f"Section {i}\n{'=' * 9 if i % 2 else '-' * 9}\n\n" + f"Paragraph {i} has words. " * 6 for i in range(8)
    ]
    doc = "\n\n".join(sections)
    pieces = split_document(doc, SplitterSettings(chunk_size=220, chunk_overlap=0), "rst")
    assert all(not re.match(r"[=\-]{3,}", p.text) for p in pieces)
    for i in range(8):
        title = f"Section {i}\n"
        assert any(title in p.text and p.text.index(title) + len(title) < len(p.text) for p in pieces)


def test_chunks_of_one_long_line_are_cited_by_column():
    doc = "Intro.\n" + "这是关于模型量化的一句话。" * 120 + "\nEnd.\n"
    pieces = split_document(doc, SplitterSettings(chunk_size=300, chunk_overlap=50), "markdown")
    on_line_two = [p for p in pieces if (p.start_line, p.end_line) == (2, 2)]
    assert len(on_line_two) > 1
    labels = [source_label(Document(p.text, metadata=_metadata(p))) for p in on_line_two]
    assert labels[0] == f"a.md:2:1-2:{len(on_line_two[0].text)}"
    assert len(set(labels)) == len(labels)


def test_a_document_of_only_markup_has_no_chunks():
    assert split_document("# Title\n\n---\n\n```\n```\n", SplitterSettings(), "markdown") == []
