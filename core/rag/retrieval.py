"""Find the chunks that answer a question, across one or more knowledge bases.

Modes: ``dense`` (nearest vectors), ``mmr`` (nearest, then diverse), ``keyword`` (BM25 over
jieba-cut words), ``hybrid`` (dense and keyword lists fused by their relative scores, the
default) and ``rrf`` (the same lists fused by reciprocal rank). Whatever the mode, each hit's
``relevance`` is the same thing: the cosine similarity of the chunk to the question, mapped by
its embedding model's calibration onto 0..1, so the threshold and the scores users see mean
the same in every mode. An optional cross-encoder reranker re-orders the candidates.
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
    threshold: float = 0.0
    rerank: bool = False
    depth: int = 20


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
        if not kbs or not query.strip():
            return []
        vectors = {key: self._query_vector(key, query) for key in {kb.embedding for kb in kbs}}
        cosines: dict[str, float] = {}
        owner: dict[str, KnowledgeBase] = {}
        dense: list[str] = []
        if settings.mode != "keyword":
            dense = self._dense(query, kbs, vectors, settings, cosines, owner)
        keyword: list[tuple[str, float]] = []
        if settings.mode in {"hybrid", "rrf", "keyword"}:
            keyword = self._keyword(query, kbs, settings.depth, owner)
        if settings.mode == "hybrid":
            ranked = _fuse([[(cid, cosines[cid]) for cid in dense], keyword])
        elif settings.mode == "rrf":
            ranked = _rank_fuse([dense, [cid for cid, _ in keyword]])
        else:
            ranked = dense or [cid for cid, _ in keyword]
        self._fill_cosines(ranked[: settings.depth], vectors, cosines, owner)
        relevance = {cid: self._relevance(owner[cid], cosines.get(cid, 0.0)) for cid in ranked}
        kept = [cid for cid in ranked[: settings.depth] if relevance[cid] >= settings.threshold]
        records = self.bases.records.chunks_by_id(kept)
        kept = [cid for cid in kept if cid in records]  # a vector whose record is gone is ignored
        if settings.rerank and self.reranker is not None and kept:
            scores = self.reranker.predict([(query, records[cid].text) for cid in kept])
            kept = [cid for _, cid in sorted(zip(scores, kept, strict=True), key=lambda pair: -pair[0])]
        sources: dict[str, Source] = {}
        hits = []
        for cid in kept[: settings.k]:
            record = records[cid]
            if record.source_id not in sources:
                sources[record.source_id] = self.bases.records.source(record.source_id)
            hits.append(Hit(record, owner[cid], sources[record.source_id], relevance[cid], len(hits) + 1))
        return hits

    def _query_vector(self, embedding: str, query: str) -> np.ndarray:
        return np.asarray(self.bases.embeddings.get(embedding).embed_query(query), dtype=np.float32)

    def _relevance(self, kb: KnowledgeBase, cosine: float) -> float:
        return self.bases.embeddings.registry.get(kb.embedding).relevance(cosine)

    def _dense(self, query, kbs, vectors, settings, cosines, owner) -> list[str]:
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
                # MMR keeps its own order; plain dense search orders all bases by similarity.
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


def _fuse(lists: list[list[tuple[str, float]]]) -> list[str]:
    """Relative score fusion: each list's scores are scaled onto 0..1 (its best 1, its worst 0)
    and summed, with equal weights.

    Unlike reciprocal rank fusion it keeps how far apart the scores are, so a list that is
    sure of its first item outweighs one that barely prefers its own.

    >>> _fuse([[("a", 0.9), ("b", 0.5), ("c", 0.1)], [("c", 12.0), ("a", 11.0)]])
    ['a', 'c', 'b']
    """
    scores: dict[str, float] = {}
    for scored in lists:
        if not scored:
            continue
        values = [score for _, score in scored]
        low, span = min(values), max(values) - min(values)
        for cid, score in scored:
            scores[cid] = scores.get(cid, 0.0) + ((score - low) / span if span else 1.0)
    return sorted(scores, key=lambda cid: -scores[cid])


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
    threshold: float = 0.0
    reranker: Any = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        kbs = [self.bases.get(name) for name in self.kb_names]
        settings = SearchSettings(k=self.k, mode=self.mode, threshold=self.threshold, rerank=self.reranker is not None)
        return [hit.document() for hit in Searcher(self.bases, self.reranker).search(query, kbs, settings)]
