import io
import json
import os
import zipfile

import docx
import pytest
from langchain_text_splitters import Language
from pypdf import PdfReader, PdfWriter

from core.knowledge.loaders import SUPPORTED_SUFFIXES, UnsupportedFile, load
from core.knowledge.reading import CODE_SUFFIXES, TEXT_SUFFIXES, UnreadableText
from tests.documents import pdf_file


def _pdf(*pages):
    """A minimal valid PDF: one page per item, each a list of text lines (None: a page without text)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines in pages:
        content = ""
        if lines is not None:
            shown = " 0 -16 Td ".join(f"({line}) Tj" for line in lines)
            content = f"BT /F1 12 Tf 72 720 Td {shown} ET"
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content}\nendstream")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {len(objects)} 0 R >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    return pdf_file(objects)


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


# --- plain text and code ------------------------------------------------------------------------


def test_markdown_is_read_as_is(tmp_path):
    path = _write(tmp_path, "guide.md", "# Guide\n\nInstall with `pip`.\n")
    doc = load(path)
    assert (doc.text, doc.kind, doc.language) == ("# Guide\n\nInstall with `pip`.\n", "markdown", "markdown")


def test_gbk_text_with_windows_line_endings(tmp_path):
    path = _write(tmp_path, "笔记.txt", "第一行：知识库\r\n第二行：问答\r第三行".encode("gbk"))
    doc = load(path)
    assert doc.text == "第一行：知识库\n第二行：问答\n第三行"
    assert doc.kind == "text"


def test_utf16_markdown_with_bom(tmp_path):
    path = _write(tmp_path, "说明.MD", "# 标题\r\n\r\n正文 text".encode("utf-16"))
    doc = load(path)
    assert doc.text == "# 标题\n\n正文 text"
    assert doc.kind == "markdown"


def test_python_file_is_code_in_python(tmp_path):
    source = 'def greet(name):\n    """Say hello."""\n    return f"hi {name}"\n'
    doc = load(_write(tmp_path, "greet.py", source))
    assert (doc.text, doc.kind, doc.language) == (source, "code", "python")


@pytest.mark.parametrize(
    ("name", "language"),
    [("a.go", "go"), ("a.rs", "rust"), ("a.cpp", "cpp"), ("a.tsx", "ts"), ("a.js", "js"), ("A.JAVA", "java")],
)
def test_code_language_follows_the_suffix(tmp_path, name, language):
    assert load(_write(tmp_path, name, "x\n")).language == language


def test_every_code_suffix_loads_with_a_splitter_language_or_none(tmp_path):
    splitter_languages = {language.value for language in Language}
    for suffix in CODE_SUFFIXES:
        doc = load(_write(tmp_path, "f" + suffix, "x = 1\n"))
        assert doc.kind == "code"
        assert doc.language is None or doc.language in splitter_languages, suffix


def test_shell_script_is_code_without_a_splitter_language(tmp_path):
    assert load(_write(tmp_path, "run.sh", "echo hi\n")).language is None


def test_config_files_are_data(tmp_path):
    doc = load(_write(tmp_path, "settings.json", '{"top_k": 4}\r\n'))
    assert (doc.text, doc.kind, doc.language) == ('{"top_k": 4}\n', "data", None)


def test_readme_without_suffix_is_text(tmp_path):
    assert load(_write(tmp_path, "README", "Read me.\n")).text == "Read me.\n"


def test_text_with_nul_bytes_is_refused(tmp_path):
    with pytest.raises(UnreadableText):
        load(_write(tmp_path, "blob.txt", b"abc\x00\x01def"))


# --- what is supported ------------------------------------------------------------------------------


def test_supported_suffixes_cover_the_folder_scan_and_the_documents():
    assert TEXT_SUFFIXES <= SUPPORTED_SUFFIXES
    assert {".ipynb", ".html", ".htm", ".pdf", ".docx", ".csv", ".tsv"} <= SUPPORTED_SUFFIXES
    assert {".xlsx", ".xlsm", ".xls", ".pptx", ".epub"} <= SUPPORTED_SUFFIXES
    assert all(suffix.startswith(".") and suffix == suffix.lower() for suffix in SUPPORTED_SUFFIXES)


@pytest.mark.parametrize("name", ["old.ppt", "old.doc", "book.mobi", "archive"])
def test_unknown_types_are_unsupported_without_reading_the_file(tmp_path, name):
    with pytest.raises(UnsupportedFile, match="unsupported"):
        load(tmp_path / name)  # the file does not exist: the name alone decides


def test_given_bytes_are_used_instead_of_the_file(tmp_path):
    path = _write(tmp_path, "notes.md", "on disk")
    assert load(path, data=b"in memory").text == "in memory"
    assert load(tmp_path / "absent.md", data="内存".encode("gbk")).text == "内存"


# --- notebooks -------------------------------------------------------------------------------------


def _notebook(cells, language="python"):
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "k", "display_name": "K", "language": language}},
            "cells": cells,
        }
    )


def test_notebook_keeps_markdown_fences_code_and_drops_outputs(tmp_path):
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Analysis\n", "\n", "Load the data."]},
        {
            "cell_type": "code",
            "metadata": {},
            "execution_count": 1,
            "source": "import pandas as pd\ndf = pd.read_csv('x.csv')\ndf.head()",
            "outputs": [
                {"output_type": "stream", "name": "stdout", "text": ["OUTPUT TEXT\n"]},
                {"output_type": "execute_result", "data": {"text/plain": ["RESULT REPR"]}, "metadata": {}},
            ],
        },
        {"cell_type": "code", "metadata": {}, "source": [], "outputs": []},
        {"cell_type": "raw", "metadata": {}, "source": "raw notes"},
    ]
    doc = load(_write(tmp_path, "analysis.ipynb", _notebook(cells)))
    assert doc.text == (
        "# Analysis\n\nLoad the data.\n\n"
        "```python\nimport pandas as pd\ndf = pd.read_csv('x.csv')\ndf.head()\n```\n\n"
        "raw notes"
    )
    assert (doc.kind, doc.language) == ("notebook", "markdown")


def test_notebook_fence_names_the_kernel_language_and_survives_backticks(tmp_path):
    cells = [{"cell_type": "code", "metadata": {}, "source": 'x <- "```"', "outputs": []}]
    doc = load(_write(tmp_path, "r.ipynb", _notebook(cells, language="R")))
    assert doc.text == '````r\nx <- "```"\n````'


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"worksheets": []}'])
def test_broken_or_old_notebooks_are_unreadable(tmp_path, content):
    with pytest.raises(UnreadableText):
        load(_write(tmp_path, "bad.ipynb", content))


# --- HTML -------------------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html><head><meta charset="gb2312"><title>手册</title>
<style>body { color: red }</style><script>var secret = "SCRIPT";</script></head>
<body>
<!-- a comment -->
<noscript>Enable JavaScript</noscript>
<h1>安装 <small>指南</small></h1>
<p>Run the
   <a href="https://example.com/setup">setup script</a> first.<br>Then restart.</p>
<h2>Options</h2>
<ul><li>fast</li><li>safe<ul><li>nested</li></ul></li></ul>
<table>
  <thead><tr><th>Name</th><th>Default</th></tr></thead>
  <tbody><tr><td>top_k</td><td><p>4</p></td></tr></tbody>
</table>
<pre><code>def f():
    return 1</code></pre>
<div>End</div><div>Really</div>
</body></html>
"""


def test_html_becomes_markdown(tmp_path):
    doc = load(_write(tmp_path, "manual.html", PAGE.encode("gbk")))
    assert doc.text == (
        "手册\n\n"
        "# 安装 指南\n\n"
        "Run the setup script first.\nThen restart.\n\n"
        "## Options\n\n"
        "- fast\n- safe\n  - nested\n\n"
        "| Name | Default |\n| --- | --- |\n| top_k | 4 |\n\n"
        "```\ndef f():\n    return 1\n```\n\n"
        "End\n\nReally"
    )
    assert (doc.kind, doc.language) == ("html", "markdown")


def test_html_nested_past_the_recursion_limit_keeps_its_text(tmp_path):
    # Old pages leave tags unclosed; html.parser then nests each inside the one before.
    page = "<h1>Old page</h1>" + "<p><font>word " * 2000 + "last"
    text = load(_write(tmp_path, "old.html", page)).text
    assert text.startswith("# Old page\n\nword") and text.endswith("last")
    assert text.count("word") == 2000


def test_html_without_charset_is_detected_like_text(tmp_path):
    doc = load(_write(tmp_path, "page.htm", "<p>中文页面，没有声明编码。</p>".encode("gb18030")))
    assert doc.text == "中文页面，没有声明编码。"


def test_html_with_a_wrong_charset_falls_back_to_detection(tmp_path):
    page = '<meta http-equiv="Content-Type" content="text/html; charset=no-such-codec"><p>héllo</p>'
    assert load(_write(tmp_path, "page.html", page)).text == "héllo"


# --- PDF ---------------------------------------------------------------------------------------------


def test_pdf_pages_are_joined_by_a_blank_line(tmp_path):
    path = _write(tmp_path, "report.pdf", _pdf(["Page one title", "Page one body"], ["Page two body"]))
    doc = load(path)
    assert doc.kind == "pdf"
    assert doc.text == "Page one title\nPage one body\n\nPage two body"


def test_scanned_pdf_without_text_layer_is_unreadable(tmp_path):
    with pytest.raises(UnreadableText, match="OCR"):
        load(_write(tmp_path, "scan.pdf", _pdf(None, None)))


@pytest.mark.parametrize("data", [b"", b"%PDF-1.4\n garbage", os.urandom(2048)], ids=["empty", "truncated", "random"])
def test_broken_pdf_is_unreadable(tmp_path, data):
    with pytest.raises(UnreadableText):
        load(_write(tmp_path, "broken.pdf", data))


def _encrypted(user_password):
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_pdf(["Secret text"]))))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_that_needs_a_password_is_unreadable(tmp_path):
    with pytest.raises(UnreadableText, match="password"):
        load(_write(tmp_path, "locked.pdf", _encrypted("secret")))


def test_pdf_restricted_only_by_an_owner_password_is_read(tmp_path):
    assert load(_write(tmp_path, "restricted.pdf", _encrypted(""))).text == "Secret text"


# --- Word ---------------------------------------------------------------------------------------------


def _docx_bytes():
    document = docx.Document()
    document.add_heading("Handbook", 0)
    document.add_heading("Setup", 1)
    document.add_paragraph("Install the   app.\nThen run it.")
    document.add_paragraph("first step", style="List Bullet")
    document.add_paragraph("second step", style="List Number")
    document.add_paragraph("")
    table = document.add_table(rows=3, cols=2)
    for row, values in zip(table.rows, [("Key", "Value"), ("top_k", "4"), ("merged", "")], strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    table.cell(2, 0).merge(table.cell(2, 1))
    document.add_heading("Details", 3)
    document.add_paragraph("After the table.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_docx_keeps_document_order_with_markdown_headings_lists_and_tables(tmp_path):
    doc = load(_write(tmp_path, "handbook.docx", _docx_bytes()))
    assert doc.text == (
        "# Handbook\n\n"
        "# Setup\n\n"
        "Install the app.\nThen run it.\n\n"
        "- first step\n\n1. second step\n\n"
        "| Key | Value |\n| --- | --- |\n| top_k | 4 |\n| merged | |\n\n"
        "### Details\n\n"
        "After the table."
    )
    assert (doc.kind, doc.language) == ("docx", "markdown")


def test_random_bytes_are_not_a_docx(tmp_path):
    with pytest.raises(UnreadableText):
        load(_write(tmp_path, "broken.docx", os.urandom(4096)))


def test_zip_that_is_not_a_word_file_is_unreadable(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(UnreadableText):
        load(_write(tmp_path, "fake.docx", out.getvalue()))


# --- CSV ---------------------------------------------------------------------------------------------


def test_csv_becomes_a_markdown_table_of_one_line_rows(tmp_path):
    content = 'name,city,note\r\nAlice,"Paris, FR","line one\r\nline two"\r\nBob,,quiet | calm\r\n\r\n'
    doc = load(_write(tmp_path, "people.csv", content))
    assert doc.text == (
        "| name | city | note |\n| --- | --- | --- |\n"
        "| Alice | Paris, FR | line one line two |\n| Bob |  | quiet \\| calm |"
    )
    assert (doc.kind, doc.language) == ("csv", "markdown")


def test_csv_delimiter_is_sniffed_and_encoding_detected(tmp_path):
    content = "姓名;城市\n张三;北京\n李四;上海\n"
    doc = load(_write(tmp_path, "人员.csv", content.encode("gbk")))
    assert doc.text == "| 姓名 | 城市 |\n| --- | --- |\n| 张三 | 北京 |\n| 李四 | 上海 |"


def test_tsv_uses_tabs_and_names_extra_columns(tmp_path):
    doc = load(_write(tmp_path, "scores.tsv", "id\tscore\n1\t9, good\textra\n"))
    assert doc.text == "| id | score | column 3 |\n| --- | --- | --- |\n| 1 | 9, good | extra |"
