"""Secure defaults and bad input: each test fails if its protection is removed."""

from __future__ import annotations

import os
import re
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from core.errors import RemoteCodeNotAllowed
from core.knowledge.ingest import Ingestion
from core.knowledge.scanning import scan_folder
from core.knowledge.sources import FolderInput, prepare
from core.knowledge.splitting import SplitterSettings
from core.models.loader import LoadOptions, load
from tests.tiny_models import build_tiny_model, tiny_spec

ROOT = Path(__file__).resolve().parents[2]


def test_server_listens_on_localhost_with_xsrf_protection_and_no_usage_stats():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["enableXsrfProtection"] is True
    assert config["browser"]["gatherUsageStats"] is False


def test_no_secrets_are_committed():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:  # a copy without git history: look at every file instead
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]
    secret = re.compile(r"hf_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9]{32,}|-----BEGIN [A-Z ]*PRIVATE KEY-----|ms-[0-9a-f]{8}-")
    leaks = []
    for name in files:
        path = ROOT / name
        readable = path.is_file() and path.stat().st_size < 2_000_000
        if readable and secret.search(path.read_text(encoding="utf-8", errors="ignore")):
            leaks.append(name)
    assert leaks == []
    assert not (ROOT / ".streamlit" / "secrets.toml").exists() or ".streamlit/secrets.toml" not in files


def test_remote_code_runs_only_after_consent(tmp_path, settings):
    folder = build_tiny_model(tmp_path / "m", "llama")
    spec = tiny_spec(folder, key="rc", name="Needs code", family="x", params_b=0.1, trust_remote_code=True)
    with pytest.raises(RemoteCodeNotAllowed):
        load(spec, settings, LoadOptions(device="cpu"))
    assert load(spec, settings, LoadOptions(device="cpu", trust_remote_code=True)).model is not None


def test_a_200_mb_file_is_skipped_without_being_read(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    with open(root / "huge.txt", "wb") as handle:  # sparse: takes no disk space
        handle.truncate(200 * 1024 * 1024)
    (root / "small.md").write_text("# ok\n")
    started = time.perf_counter()
    found, skipped = scan_folder(root, max_bytes=10 * 1024 * 1024)
    assert time.perf_counter() - started < 2
    assert [f.path for f in found] == ["small.md"]
    assert [(s.path, s.reason) for s in skipped] == [("huge.txt", "too_large")]


def test_deeply_nested_folders_are_read(tmp_path, bases):
    deep = tmp_path / "src"
    for level in range(60):
        deep = deep / f"d{level}"
    deep.mkdir(parents=True)
    (deep / "bottom.md").write_text("# Bottom\n\nFound at the bottom.\n")
    kb = bases.create("deep", "multilingual-e5-small-q4", SplitterSettings())
    ready = prepare(bases, kb, FolderInput(tmp_path / "src"))
    report = Ingestion(bases, kb, ready.source, ready.root, 10**6).run()
    assert report.files_ingested == 1 and bases.chunk_table(kb)["path"][0].endswith("d59/bottom.md")


def test_invalid_text_and_odd_encodings_are_listed_not_fatal(tmp_path, bases):
    root = tmp_path / "src"
    root.mkdir()
    (root / "gbk.txt").write_bytes("中文的笔记内容，编码为 GBK。".encode("gbk"))
    (root / "broken.md").write_bytes(b"\x80\x81\xfe\xff" * 50 + b"\x00\x00")
    (root / "empty.md").write_bytes(b"")
    (root / "blob.bin").write_bytes(os.urandom(64))
    kb = bases.create("odd", "multilingual-e5-small-q4", SplitterSettings())
    ready = prepare(bases, kb, FolderInput(root))
    report = Ingestion(bases, kb, ready.source, ready.root, 10**6).run()
    assert report.files_ingested == 1
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons == {"blob.bin": "binary", "broken.md": "binary", "empty.md": "empty"}
    assert "中文的笔记" in bases.chunk_table(kb)["text"][0]
