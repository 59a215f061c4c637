"""Find the chunks that answer a question, across one or more knowledge bases."""

from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, InstanceOf

from core.knowledge.bases import KnowledgeBases
from core.knowledge.records import KnowledgeBase


def dense_search(bases: KnowledgeBases, kbs: list[KnowledgeBase], query: str, k: int) -> list[Document]:
    """The ``k`` chunks closest to ``query`` by cosine similarity, best first.

    Each document carries its knowledge base, file, line range and a ``score`` in 0..1 (the
    cosine similarity, clipped at 0). The query is embedded once per embedding model.
    """
    scored: list[tuple[float, KnowledgeBase, str]] = []
    vectors: dict[str, list[float]] = {}
    for kb in kbs:
        if kb.embedding not in vectors:
            vectors[kb.embedding] = bases.embeddings.get(kb.embedding).embed_query(query)
        store = bases.store(kb)
        for doc, distance in store.similarity_search_by_vector_with_relevance_scores(vectors[kb.embedding], k=k):
            scored.append((max(0.0, 1.0 - distance), kb, doc.id))
    scored.sort(key=lambda hit: -hit[0])
    records = bases.records.chunks_by_id([cid for _, _, cid in scored[:k]])
    docs = []
    for score, kb, cid in scored[:k]:
        record = records.get(cid)
        if record is None:
            continue  # a vector whose record is gone: an interrupted delete; ignored until repaired
        docs.append(
            Document(
                page_content=record.text,
                id=cid,
                metadata={
                    "kb": kb.name,
                    "kb_id": kb.id,
                    "source_id": record.source_id,
                    "path": record.path,
                    "start_line": record.start_line,
                    "end_line": record.end_line,
                    "heading": record.heading,
                    "score": round(score, 4),
                    "rank": len(docs) + 1,
                },
            )
        )
    return docs


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

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        kbs = [self.bases.get(name) for name in self.kb_names]
        return dense_search(self.bases, kbs, query, self.k)
