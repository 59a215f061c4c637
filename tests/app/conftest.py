"""App tests run the real pages in-process with the fake chat backend and a fresh data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.settings import get_settings
from ui.common import services

ENTRY = Path(__file__).resolve().parents[2] / "Home.py"


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """A clean data folder and the fake chat model for every page of this test."""
    monkeypatch.setenv("KBA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KBA_LLM_BACKEND", "fake")
    get_settings.cache_clear()
    services.clear()
    yield tmp_path
    services.clear()
    get_settings.cache_clear()


@pytest.fixture
def app(app_env) -> AppTest:
    """The app, started on its landing page, in English."""
    at = AppTest.from_file(str(ENTRY), default_timeout=60)
    at.secrets["unused"] = "set so that no developer secrets.toml is read"
    at.session_state["lang"] = "en"
    return at.run()


@pytest.fixture
def docs_folder(tmp_path):
    """A small folder of documents on two topics, and one binary file."""
    root = tmp_path / "docs"
    root.mkdir()
    (root / "quant.md").write_text(
        "# 量化\n\nLMDeploy 支持 AWQ 4bit 权重量化，以及 KV cache int8 量化。\n", encoding="utf-8"
    )
    (root / "pasta.md").write_text("# Pasta\n\nBoil the pasta for ten minutes, then add the tomato sauce.\n")
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff\x00\x00")
    return root


def wait_for_jobs() -> None:
    """Let background jobs finish before the next rerun looks at them."""
    jobs = services().jobs
    for job in jobs.active():
        jobs.wait(job.id, timeout=120)


def shown(text: str) -> str:
    """Text as the user reads it: without the escapes that keep file names out of Markdown."""
    return text.replace("\\", "")
