"""Integration tests use the real embedded models, a real Chroma folder and real files."""

from __future__ import annotations

import pytest

from core.services import Services, build_services
from core.settings import Settings


@pytest.fixture(scope="session")
def real_services(tmp_path_factory) -> Services:
    """Services over one data folder for the whole session, so the bundled model converts once."""
    return build_services(Settings(data_dir=tmp_path_factory.mktemp("integration") / "data"))


@pytest.fixture(scope="session")
def smollm(real_services):
    """The bundled SmolLM2 model, loaded."""
    return real_services.models.load(real_services.settings.default_model)
