"""The Knowledge page's chunk browser: search, filter and read the stored chunks, and remove a
file's chunks after a confirmation.
"""

from __future__ import annotations

import html
import re

import pandas as pd
import streamlit as st

from core.errors import AppError
from core.knowledge.records import KnowledgeBase
from core.services import Services
from ui import keys
from ui.common import plain, queue_toast, show_error, t
from ui.source_page import page_button

_CHUNK_VIEW = "kb.chunk_view"  # the knowledge base, search and file the chunk table shows
_REMOVING = "kb.removing"  # (source id, path) of the file whose removal waits for a confirmation


def chunk_browser(app: Services, kb: KnowledgeBase, editable: bool = True) -> None:
    """Search and filter the stored chunks; pick one in the table to read it with its
    neighbours and the search words marked; remove a file's chunks after a confirmation.
    """
    chunks = app.knowledge.chunk_table(kb)
    if chunks.empty:
        st.info(t("kb.chunks.empty"))
        return
    search_col, file_col = st.columns(2)
    query = search_col.text_input(t("kb.chunks.search"), key=keys.KB_SEARCH).strip()
    files = sorted(chunks["path"].unique())
    only = file_col.selectbox(
        t("kb.chunks.file"),
        [None, *files],
        key=keys.KB_FILE_FILTER,
        format_func=lambda p: t("kb.chunks.all_files") if p is None else p,
        placeholder=t("select.one"),
    )
    shown = chunks if only is None else chunks[chunks["path"] == only]
    if query:
        shown = shown[shown["text"].str.contains(query, case=False, regex=False)]
    shown = shown.reset_index(drop=True)
    st.caption(t("kb.chunks.count", shown=len(shown), total=len(chunks)))
    # A row number means another chunk once the search or the filter changes: drop the selection.
    view = (kb.id, query.lower(), only)
    if st.session_state.get(_CHUNK_VIEW) != view:
        st.session_state[_CHUNK_VIEW] = view
        st.session_state.pop(keys.KB_CHUNK_TABLE, None)
    columns = {
        t("kb.col.path"): shown["path"],
        t("kb.col.seq"): shown["seq"],
        t("kb.col.lines"): shown["start_line"].astype(str) + "-" + shown["end_line"].astype(str),
    }
    if shown["page"].notna().any():  # PDFs and images: the page each chunk starts on
        columns[t("kb.col.page")] = shown["page"].astype("Int64")
    columns[t("kb.col.heading")] = shown["heading"]
    columns[t("kb.col.chars")] = shown["chars"]
    columns[t("kb.col.text")] = [_excerpt(text, query) for text in shown["text"]]
    picked = st.dataframe(
        pd.DataFrame(columns),
        width="stretch",
        hide_index=True,
        key=keys.KB_CHUNK_TABLE,
        on_select="rerun",
        selection_mode="single-row",
    )
    rows = [r for r in picked.selection.rows if r < len(shown)]
    if not rows:
        if not shown.empty:
            st.caption(t("kb.chunks.select"))
        return
    chunk = shown.iloc[rows[0]]
    _show_chunk(chunks, chunk, query)
    page = None if pd.isna(chunk["page"]) else int(chunk["page"])
    page_button(app, chunk["source_id"], chunk["path"], page, key=keys.KB_CHUNK_TABLE + ".page")
    if editable and st.button(
        t("kb.chunks.remove_file.button", path=plain(chunk["path"])), key=keys.KB_REMOVE_FILE, icon=":material/delete:"
    ):
        st.session_state[_REMOVING] = (chunk["source_id"], chunk["path"])
    if removing := st.session_state.get(_REMOVING):
        source_id, path = removing
        count = int(((chunks["source_id"] == source_id) & (chunks["path"] == path)).sum())
        confirm = st.dialog(t("kb.chunks.remove_file.title"), on_dismiss=_forget_removal)(_confirm_remove)
        confirm(app, kb, source_id, path, count)


def _forget_removal() -> None:
    st.session_state.pop(_REMOVING, None)


def _confirm_remove(app: Services, kb: KnowledgeBase, source_id: str, path: str, count: int) -> None:
    """The dialog that names the file before its chunks are removed."""
    st.markdown(t("kb.chunks.remove_file.confirm", path=plain(path), n=count))
    yes_col, no_col = st.columns(2)
    if yes_col.button(t("kb.chunks.remove_file.yes"), key=keys.KB_REMOVE_FILE_YES, type="primary", width="stretch"):
        _forget_removal()
        try:
            removed = app.knowledge.remove_file(kb, app.knowledge.records.source(source_id), path)
        except AppError as error:
            show_error(error)
            return
        queue_toast(t("kb.chunks.removed", n=removed, path=path))
        st.rerun()
    if no_col.button(t("kb.chunks.remove_file.no"), key=keys.KB_REMOVE_FILE_NO, width="stretch"):
        _forget_removal()
        st.rerun()


def _excerpt(text: str, query: str, width: int = 160) -> str:
    """The start of a chunk, or with a search, the words around its first hit."""
    at = text.lower().find(query.lower()) if query else -1
    if at < width // 2:
        return text[:width]
    return "…" + text[at - width // 4 : at - width // 4 + width]


def _show_chunk(chunks: pd.DataFrame, chunk: pd.Series, query: str = "") -> None:
    same_file = chunks[(chunks["source_id"] == chunk["source_id"]) & (chunks["path"] == chunk["path"])]
    neighbours = {n["seq"]: n for _, n in same_file.iterrows()}
    before, after = neighbours.get(chunk["seq"] - 1), neighbours.get(chunk["seq"] + 1)
    heading = f" · {chunk['heading']}" if chunk["heading"] else ""
    if not pd.isna(chunk["page"]):
        heading = f" · {t('kb.chunks.on_page', page=int(chunk['page']))}{heading}"
    st.markdown(
        plain(t("kb.chunks.chunk", path=chunk["path"], start=chunk["start_line"], end=chunk["end_line"]) + heading)
    )
    if before is not None:
        with st.expander(t("kb.chunks.before")):
            _chunk_text(before["text"], query)
    _chunk_text(chunk["text"], query)
    if after is not None:
        with st.expander(t("kb.chunks.after")):
            _chunk_text(after["text"], query)


def _chunk_text(text: str, query: str) -> None:
    """A chunk as written (line breaks kept), every hit of the search marked."""
    if not query:
        st.code(text, language=None, wrap_lines=True)
        return
    parts = re.split(f"({re.escape(query)})", text, flags=re.IGNORECASE)
    marked = "".join(f"<mark>{html.escape(p)}</mark>" if i % 2 else html.escape(p) for i, p in enumerate(parts))
    st.html(f'<pre style="white-space: pre-wrap; font-size: 0.85rem">{marked}</pre>')
