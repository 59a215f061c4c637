"""The bundled models convert into big folders in every data folder that uses them
(multilingual-e5-small: 460 MB; SmolLM2: 540 MB). Converting them for each test's own data
folder wrote about 28 GB per run and filled CI's disk, so within one run the first conversion of
each is real and later ones hard-link its files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from core.app_files import AppFiles
from core.embeddings import e5_convert
from core.embeddings.catalog import EmbeddingRegistry
from core.embeddings.pool import EmbeddingPool
from core.errors import EmbeddedModelMissing
from core.models import embedded
from core.settings import Settings


def linking_writer(real: Callable[[e5_convert.E5File, Path], None], cache_root: Path):
    """A ``write_folder`` that converts each distinct e5 weight file once under ``cache_root``,
    then fills ``folder`` with hard links to that conversion (copies where links fail)."""

    def write_folder(e5: e5_convert.E5File, folder: Path) -> None:
        cache = cache_root / f"e5-conversion-{hashlib.sha256(e5.data).hexdigest()[:16]}"
        if not cache.is_dir():
            work = cache.with_name(cache.name + ".partial")
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            real(e5, work)
            work.rename(cache)
        _link_tree(cache, folder)

    return write_folder


def linking_convert(real: Callable[..., Path], cache_root: Path):
    """An ``embedded.convert`` that converts the bundled SmolLM2 GGUF once under ``cache_root``
    and gives every later folder hard links to it; any other file or dtype is converted as is."""

    def convert(source: Path, folder: Path, files: AppFiles, dtype: str | None = None) -> Path:
        if dtype is not None or source != _bundled_gguf():
            return real(source, folder, files, dtype)
        cache = cache_root / "smollm2-conversion" / "model"
        if not (cache / "model.safetensors").is_file():
            cache.parent.mkdir(parents=True, exist_ok=True)
            real(source, cache, AppFiles(cache.parent), dtype)
        return files.replace_folder(folder, lambda partial: _link_tree(cache, partial))

    return convert


def _bundled_gguf() -> Path | None:
    try:
        return embedded.gguf_file()
    except EmbeddedModelMissing:
        return None


def _link_tree(source_folder: Path, folder: Path) -> None:
    for source in sorted(source_folder.rglob("*")):
        target = folder / source.relative_to(source_folder)
        if source.is_dir():
            target.mkdir(exist_ok=True)
            continue
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)


def seed(data_dir: Path) -> None:
    """Convert the bundled e5 into ``data_dir`` as the app would (claimed in its ledger) before
    another process starts on it; that process then finds it converted, and this run's shared
    conversion is linked rather than written again."""
    settings = Settings(data_dir=data_dir)
    settings.ensure_dirs()
    pool = EmbeddingPool(EmbeddingRegistry(settings.models_dir / "custom_embeddings.json"), settings.models_dir)
    for spec in pool.registry.all():
        folder = pool.converted_folder(spec)
        if folder is not None:
            e5_convert.ensure_converted(folder, files=AppFiles(settings.data_dir))
