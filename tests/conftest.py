"""Shared fixtures. No test may reach a model hub: the hub clients are switched offline here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.app_files import AppFiles
from core.embeddings import e5_convert
from core.embeddings.catalog import EmbeddingRegistry
from core.embeddings.pool import EmbeddingPool
from core.knowledge import vectors
from core.knowledge.bases import KnowledgeBases
from core.knowledge.records import Records
from core.models import embedded
from core.settings import Settings
from tests.convert_once import linking_convert, linking_writer
from tests.fakes import HashEmbeddings

# Set before any test imports a hub library (core imports none at import time: see
# tests/unit/test_architecture.py), so nothing can wait on a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# The model tests run on the CPU in CI; KBA_TEST_DEVICE=cuda runs the same tests on a GPU.
TEST_DEVICE = os.environ.get("KBA_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session", autouse=True)
def _convert_bundled_models_once(tmp_path_factory):
    """Each data folder gets hard links to one real conversion of each bundled model
    (tests/convert_once.py); session-wide, so module and session fixtures get them too."""
    cache = tmp_path_factory.getbasetemp()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(e5_convert, "write_folder", linking_writer(e5_convert.write_folder, cache))
        patch.setattr(embedded, "convert", linking_convert(embedded.convert, cache))
        yield


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a fresh data folder."""
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
def files(tmp_path: Path) -> AppFiles:
    """The ledger of app-created folders, with ``tmp_path`` as the data folder."""
    return AppFiles(tmp_path)


@pytest.fixture
def fake_embeddings() -> HashEmbeddings:
    """Bag-of-words embeddings that count what they embed."""
    return HashEmbeddings()


@pytest.fixture
def bases(settings: Settings, fake_embeddings: HashEmbeddings) -> KnowledgeBases:
    """Knowledge bases over a real SQLite file and a real Chroma folder, with fake embeddings."""
    settings.ensure_dirs()
    registry = EmbeddingRegistry(settings.models_dir / "custom_embeddings.json")
    pool = EmbeddingPool(registry, settings.models_dir, builder=lambda spec, batch, folder: fake_embeddings)
    sources = settings.data_dir / "sources"
    return KnowledgeBases(
        Records(settings.db_path), vectors.open_store(settings), pool, sources, AppFiles(settings.data_dir)
    )
