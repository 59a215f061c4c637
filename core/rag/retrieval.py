"""Find the chunks that answer a question, across one or more knowledge bases.

Modes: ``hybrid`` (dense and keyword candidates ordered by one relevance that weighs both, the
default), ``dense`` (nearest vectors), ``mmr`` (nearest, then diverse), ``keyword`` (BM25 over
jieba-cut words) and ``rrf`` (the dense and keyword lists fused by reciprocal rank).

Relevance is one 0..1 number per chunk and question, from its embedding model's row
(:meth:`EmbeddingSpec.relevance`): absolute, so it can be compared across questions and cut at a
floor, and strictly increasing in its evidence, so different scores never tie at 1. Each mode
counts the evidence it searched with: hybrid and rrf the cosine and the BM25 score, dense and mmr
the cosine only, keyword the BM25 score only. Hybrid, dense and keyword lists are ordered by
that relevance; mmr and rrf keep their own order, by design not the relevance. Chunks below the
threshold are left out: by default each model's ``relevance_floor``, calibrated so off-topic
questions find nothing (keyword mode has no calibrated floor: any chunk sharing a word is
kept). An optional cross-encoder reranker re-orders the kept chunks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, InstanceOf

from core.knowledge.bases import KnowledgeBases
from core.knowledge.links import line_url
from core.knowledge.records import ChunkRecord, KnowledgeBase, Source
from core.knowledge.terms import match_query, terms

SearchMode = Literal["hybrid", "rrf", "dense", "mmr", "keyword"]
RRF_K = 60  # the constant of Cormack et al.'s reciprocal rank fusion; not tuned to any data set


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """How to search: how many chunks, which mode, the lowest relevance kept, reranking."""

    k: int = 4
    mode: SearchMode = "hybrid"
    threshold: float | None = None  # None: each embedding model's calibrated relevance_floor
    rerank: bool = False
    depth: int = 20


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A chunk the mode's searches found: its cosine similarity to the question, its BM25 score
    (None where keyword search did not find it or did not run) and the relevance they give.
    """

    chunk_id: str
    kb: KnowledgeBase
    cosine: float
    bm25: float | None
    relevance: float


@dataclasses.dataclass(frozen=True)
class Hit:
    """A retrieved chunk with where it comes from and how relevant it is (0..1)."""

    chunk: ChunkRecord
    kb: KnowledgeBase
    source: Source
    relevance: float
    rank: int

    @property
    def url(self) -> str | None:
        """A link to the chunk's lines, for git sources."""
        if self.source.kind != "git":
            return None
        return line_url(
            self.source.location, self.source.commit_sha, self.chunk.path, self.chunk.start_line, self.chunk.end_line
        )

    def document(self) -> Document:
        """The hit as a LangChain document; its metadata carries everything the pages show."""
        c = self.chunk
        return Document(
            page_content=c.text,
            id=c.id,
            metadata={
                "kb": self.kb.name,
                "kb_id": self.kb.id,
                "source_id": c.source_id,
                "source_kind": self.source.kind,
                "source": self.source.location,
                "commit": self.source.commit_sha,
                "path": c.path,
                "start_line": c.start_line,
                "end_line": c.end_line,
                "start_col": c.start_col,
                "end_col": c.end_col,
                "page": c.page,
                "heading": c.heading,
                "score": self.relevance,
                "rank": self.rank,
                "url": self.url,
            },
        )


class Searcher:
    """Searches knowledge bases; ``reranker`` is a cross-encoder (``predict(pairs)``) or None."""

    def __init__(self, bases: KnowledgeBases, reranker: Any = None) -> None:
        self.bases = bases
        self.reranker = reranker

    def search(self, query: str, kbs: Sequence[KnowledgeBase], settings: SearchSettings) -> list[Hit]:
        """The best ``settings.k`` chunks for ``query``, best first, at or above the threshold."""
        found = self.candidates(query, kbs, settings)[: settings.depth]
        kept = [c for c in found if c.relevance >= self._floor(c.kb, settings)]
        records = self.bases.records.chunks_by_id([c.chunk_id for c in kept])
        kept = [c for c in kept if c.chunk_id in records]  # a vector whose record is gone is ignored
        if settings.rerank and self.reranker is not None and kept:
            scores = self.reranker.predict([(query, records[c.chunk_id].text) for c in kept])
            kept = [c for _, c in sorted(zip(scores, kept, strict=True), key=lambda pair: -pair[0])]
        sources: dict[str, Source] = {}
        hits = []
        for c in kept[: settings.k]:
            record = records[c.chunk_id]
            if record.source_id not in sources:
                sources[record.source_id] = self.bases.records.source(record.source_id)
            hits.append(Hit(record, c.kb, sources[record.source_id], c.relevance, len(hits) + 1))
        return hits

    def candidates(self, query: str, kbs: Sequence[KnowledgeBase], settings: SearchSettings) -> list[Candidate]:
        """Every chunk the mode's searches found, in the mode's order, with its evidence; no
        threshold applied (bench/calibrate_guard.py fits the relevance on these).
        """
        if not kbs or not query.strip():
            return []
        vectors = {key: self._query_vector(key, query) for key in {kb.embedding for kb in kbs}}
        cosines: dict[str, float] = {}
        owner: dict[str, KnowledgeBase] = {}
        dense: list[str] = []
        if settings.mode != "keyword":
            dense = self._dense(kbs, vectors, settings, cosines, owner)
        keyword: list[tuple[str, float]] = []
        if settings.mode in {"hybrid", "rrf", "keyword"}:
            keyword = self._keyword(query, kbs, settings.depth, owner)
        bm25 = dict(keyword)
        ids = list(dict.fromkeys([*dense, *bm25]))
        self._fill_cosines(ids, vectors, cosines, owner)
        found = {cid: self._candidate(cid, owner[cid], cosines[cid], bm25.get(cid), settings.mode) for cid in ids}
        if settings.mode == "mmr":
            order = dense
        elif settings.mode == "rrf":
            order = _rank_fuse([dense, list(bm25)])
        else:
            order = sorted(ids, key=lambda cid: -found[cid].relevance)
        return [found[cid] for cid in order]

    def _candidate(self, cid: str, kb: KnowledgeBase, cosine: float, bm25: float | None, mode: str) -> Candidate:
        spec = self.bases.embeddings.registry.get(kb.embedding)
        return Candidate(cid, kb, cosine, bm25, spec.relevance(None if mode == "keyword" else cosine, bm25 or 0.0))

    def _floor(self, kb: KnowledgeBase, settings: SearchSettings) -> float:
        if settings.threshold is not None:
            return settings.threshold
        if settings.mode == "keyword":
            # The floors are calibrated on relevance that counts meaning, which keyword mode
            # leaves out: its words-only relevance stays below them even for exact matches.
            return 0.0
        return self.bases.embeddings.registry.get(kb.embedding).relevance_floor

    def _query_vector(self, embedding: str, query: str) -> np.ndarray:
        return np.asarray(self.bases.embeddings.get(embedding).embed_query(query), dtype=np.float32)

    def _dense(self, kbs, vectors, settings, cosines, owner) -> list[str]:
        found: list[tuple[float, str]] = []
        for kb in kbs:
            collection = self.bases.collection(kb)
            if collection.count() == 0:
                continue
            include = ["distances", "embeddings"] if settings.mode == "mmr" else ["distances"]
            result = collection.query(
                query_embeddings=[vectors[kb.embedding].tolist()],
                n_results=min(settings.depth, collection.count()),
                include=include,
            )
            ids, distances = result["ids"][0], result["distances"][0]
            if settings.mode == "mmr":
                from langchain_core.vectorstores.utils import maximal_marginal_relevance

                order = maximal_marginal_relevance(vectors[kb.embedding], list(result["embeddings"][0]), k=len(ids))
                ids, distances = [ids[i] for i in order], [distances[i] for i in order]
            for position, (cid, distance) in enumerate(zip(ids, distances, strict=True)):
                cosines[cid] = 1.0 - distance
                owner[cid] = kb
                found.append((-position if settings.mode == "mmr" else 1.0 - distance, cid))
        return [cid for _, cid in sorted(found, key=lambda pair: -pair[0])]

    def _keyword(self, query: str, kbs: Sequence[KnowledgeBase], depth: int, owner) -> list[tuple[str, float]]:
        """(chunk id, BM25 score, higher is better), best first."""
        by_id = {kb.id: kb for kb in kbs}
        rows = self.bases.records.keyword_search(list(by_id), match_query(terms(query)), depth)
        kb_of = self.bases.records.kb_of_chunks([cid for cid, _ in rows])
        for cid, _ in rows:
            owner.setdefault(cid, by_id[kb_of[cid]])
        return [(cid, -score) for cid, score in rows]  # FTS5's bm25() is lower for better matches

    def _fill_cosines(self, ids: list[str], vectors, cosines: dict[str, float], owner) -> None:
        """Cosine similarity for candidates that only keyword search found, from their stored vectors."""
        missing: dict[str, list[str]] = {}
        for cid in ids:
            if cid not in cosines:
                missing.setdefault(owner[cid].id, []).append(cid)
        for cids in missing.values():
            kb = owner[cids[0]]
            stored = self.bases.collection(kb).get(ids=cids, include=["embeddings"])
            for cid, vector in zip(stored["ids"], stored["embeddings"], strict=True):
                cosines[cid] = float(np.dot(np.asarray(vector, dtype=np.float32), vectors[kb.embedding]))


def _rank_fuse(lists: list[list[str]]) -> list[str]:
    """Reciprocal rank fusion: each list gives its item at rank r a score of 1 / (RRF_K + r).

    >>> _rank_fuse([["a", "b", "c"], ["b", "d"]])
    ['b', 'a', 'd', 'c']
    """
    scores: dict[str, float] = {}
    for ranked in lists:
        for rank, cid in enumerate(ranked, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(scores, key=lambda cid: -scores[cid])


class KnowledgeRetriever(BaseRetriever):
    """A LangChain retriever over named knowledge bases.

    Example::

        retriever = KnowledgeRetriever(bases=services.knowledge, kb_names=["docs"], k=4)
        retriever.invoke("lmdeploy 支持哪些量化方式？")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    bases: InstanceOf[KnowledgeBases]
    kb_names: list[str]
    k: int = 4
    mode: SearchMode = "hybrid"
    threshold: float | None = None
    reranker: Any = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        kbs = [self.bases.get(name) for name in self.kb_names]
        settings = SearchSettings(k=self.k, mode=self.mode, threshold=self.threshold, rerank=self.reranker is not None)
        return [hit.document() for hit in Searcher(self.bases, self.reranker).search(query, kbs, settings)]
