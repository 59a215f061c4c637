"""Render retrieved chunks as the numbered sources a prompt shows the model."""

from __future__ import annotations

from langchain_core.documents import Document


def source_label(doc: Document) -> str:
    """Where a chunk comes from, e.g. ``docs/quant.md:12-30``.

    >>> source_label(Document("x", metadata={"path": "a.md", "start_line": 3, "end_line": 5}))
    'a.md:3-5'
    """
    meta = doc.metadata
    start, end = meta.get("start_line"), meta.get("end_line")
    if start is None:
        return meta.get("path", "?")
    return f"{meta.get('path', '?')}:{start}-{end}" if end and end != start else f"{meta.get('path', '?')}:{start}"


def format_context(docs: list[Document]) -> str:
    """Number the chunks [1], [2], … in rank order, each with its origin.

    >>> print(format_context([Document("Paris.", metadata={"path": "fr.md", "start_line": 1})]))
    [1] fr.md:1
    Paris.
    """
    return "\n\n".join(f"[{i}] {source_label(doc)}\n{doc.page_content}" for i, doc in enumerate(docs, 1))
