"""Embedding and reranker rows made by users: a local folder or a hub repository id."""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.embeddings.catalog import EmbeddingSpec
from core.errors import InvalidModelFolder
from core.models.custom import slug


def embedding_row(source: str, kind: str = "embedding") -> EmbeddingSpec:
    """A row for a sentence-transformers model in a folder on this machine, or for a hub id
    (owner/name, the same on ModelScope and Hugging Face).
    """
    text = source.strip()
    folder = Path(text).expanduser()
    if folder.is_dir():
        config = _read_json(folder / "config.json")
        if config is None:
            raise InvalidModelFolder(path=text, reason="it has no config.json")
        st_config = _read_json(folder / "sentence_bert_config.json") or {}
        return EmbeddingSpec(
            key=slug(folder.name),
            name=folder.name,
            backend="sentence-transformers",
            dim=int(config.get("hidden_size", 0)),
            max_tokens=int(st_config.get("max_seq_length") or config.get("max_position_embeddings", 512)),
            languages="?",
            kind=kind,
            local_path=str(folder.resolve()),
        )
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", text):
        raise InvalidModelFolder(path=text, reason="it is neither a folder here nor a repository id like owner/name")
    return EmbeddingSpec(
        key=slug(text),
        name=text.split("/")[-1],
        backend="sentence-transformers",
        dim=0,
        max_tokens=512,
        languages="?",
        kind=kind,
        modelscope_id=text,
        hf_id=text,
    )


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
