"""Embedding and reranker rows made by users: a local folder, a hub repository id, or a model on
an OpenAI-compatible server (its client is :mod:`core.embeddings.served`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.credentials import origin
from core.embeddings.catalog import EmbeddingSpec
from core.errors import InvalidModelFolder
from core.models.custom import row_for_endpoint, slug

# Texts per request when the row does not say; TEI's default --max-client-batch-size is 32.
DEFAULT_BATCH = 32
# Served models read an unknown number of tokens: the server cuts or refuses longer inputs. Most
# embedding models read 512, so the Knowledge page warns about chunks longer than that.
ASSUMED_MAX_TOKENS = 512
NOTES = (
    "Served by {server}. Relevance uses the app's estimated defaults, not values fitted for this model: "
    "if search keeps too much or too little, set the threshold on the Chat page."
)


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


def served_row(
    base_url: str,
    model: str,
    name: str | None = None,
    api_key_env: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    query_prefix: str = "",
    passage_prefix: str = "",
) -> EmbeddingSpec:
    """A row for ``model`` at an OpenAI-compatible server, its dimension not yet known (0).

    The address is checked as for chat-model servers (no credentials in it, http(s) only); the
    key comes from ``api_key_env`` only if the configuration allows that variable for the server.
    """
    endpoint = row_for_endpoint(base_url, model, name, api_key_env)
    server = origin(endpoint.base_url) or endpoint.base_url
    return EmbeddingSpec(
        key=slug(endpoint.name) + "-served",
        name=endpoint.name,
        backend="openai",
        dim=0,
        max_tokens=ASSUMED_MAX_TOKENS,
        languages="?",
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
        notes=NOTES.format(server=server),
        licence="set by the server",
        base_url=endpoint.base_url,
        api_model=endpoint.api_model,
        api_key_env=endpoint.api_key_env,
        batch_size=max(1, int(batch_size)),
    )


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
