import os

from core.knowledge.scanning import scan_folder


def _write(root, rel, data):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_scan_keeps_documents_and_code_and_says_why_others_are_skipped(tmp_path):
    root = tmp_path / "src"
    _write(root, "README.md", b"# Title\n")
    _write(root, "docs/guide.rst", b"Guide\n=====\n")
    _write(root, "pkg/main.py", b"print('hi')\n")
    _write(root, "notes.txt", "中文笔记".encode("gbk"))
    _write(root, "logo.png", b"\x89PNG\x00\x00")
    _write(root, "data.weird", b"\x00\x01\x02")
    _write(root, "empty.md", b"")
    _write(root, "big.txt", b"x" * 2000)
    _write(root, "mystery.xyz", b"plain words")
    _write(root, ".git/config", b"[core]\n")
    _write(root, "node_modules/lib/index.js", b"module.exports = 1\n")

    found, skipped = scan_folder(root, max_bytes=1000)

    assert [f.path for f in found] == ["README.md", "docs/guide.rst", "notes.txt", "pkg/main.py"]
    reasons = {s.path: s.reason for s in skipped}
    assert reasons == {
        ".git/": "ignored_folder",
        "node_modules/": "ignored_folder",
        "logo.png": "binary",
        "data.weird": "unsupported_type",
        "empty.md": "empty",
        "big.txt": "too_large",
        "mystery.xyz": "unsupported_type",
    }


def test_links_pointing_outside_the_folder_are_not_followed(tmp_path):
    root = tmp_path / "src"
    outside = _write(tmp_path, "secret.txt", b"password")
    _write(root, "inside.md", b"# ok\n")
    os.symlink(outside, root / "leak.txt")
    os.symlink(root / "inside.md", root / "alias.md")
    os.symlink(root, root / "loop")  # a folder link back to the root

    found, skipped = scan_folder(root, max_bytes=10_000)

    assert sorted(f.path for f in found) == ["alias.md", "inside.md"]
    assert {s.path: s.reason for s in skipped} == {"leak.txt": "link_outside", "loop/": "link_outside"}


def test_gitignore_rules_apply_at_every_level_and_can_be_negated(tmp_path):
    root = tmp_path / "repo"
    _write(root, ".gitignore", b"*.log\nbuild/\n!keep.log\n")
    _write(root, "app.log", b"noise\n")
    _write(root, "keep.log", b"kept\n")
    _write(root, "build/out.md", b"# generated\n")
    _write(root, "docs/.gitignore", b"drafts/\n")
    _write(root, "docs/drafts/wip.md", b"# wip\n")
    _write(root, "docs/guide.md", b"# guide\n")

    found, skipped = scan_folder(root, max_bytes=10_000)

    assert [f.path for f in found] == ["docs/guide.md"]  # keep.log is re-included but .log is not read
    reasons = {s.path: s.reason for s in skipped}
    assert reasons["app.log"] == "gitignored" and reasons["build/"] == "gitignored"
    assert reasons["docs/drafts/"] == "gitignored"
    assert reasons["keep.log"] == "unsupported_type"


def test_default_ignore_list_drops_lock_minified_and_tokenizer_files(tmp_path):
    root = tmp_path / "repo"
    for name in [
        "poetry.lock",
        "package-lock.json",
        "static/app.min.js",
        "model/merges.txt",
        "model/vocab.json",
        "api_pb2.py",
        "README.md",
    ]:
        _write(root, name, b"content\n")
    found, skipped = scan_folder(root, max_bytes=10_000)
    assert [f.path for f in found] == ["README.md"]
    assert {s.reason for s in skipped} == {"ignored_file"}


def test_pdf_and_word_files_are_not_taken_for_binaries(tmp_path):
    root = tmp_path / "docs"
    _write(root, "paper.pdf", b"%PDF-1.4\n\x00\x01binary body")
    _write(root, "notes.docx", b"PK\x03\x04\x00\x00")
    found, _ = scan_folder(root, max_bytes=10_000)
    assert [f.path for f in found] == ["notes.docx", "paper.pdf"]
