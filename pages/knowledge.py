"""Knowledge page: create knowledge bases, ingest folders, preview their chunks."""

from pathlib import Path

import pandas as pd
import streamlit as st

from core.embeddings.catalog import EMBEDDINGS
from core.errors import AppError
from core.knowledge.splitting import SplitterSettings
from ui import keys
from ui.common import duration, lang, plain, services, show_error, t
from ui.jobs import first_sight, watch

app = services()
st.title(t("kb.title"))

# A base created on the last run becomes the selection before the selectbox is drawn.
if pending := st.session_state.pop("kb.just_created", None):
    st.session_state[keys.KB_PICK] = pending

with st.expander(t("kb.create.header"), expanded=not app.knowledge.all()):
    name = st.text_input(t("kb.create.name"), key=keys.KB_NEW_NAME, max_chars=64)
    embedding = st.selectbox(
        t("kb.create.embedding"),
        [e.key for e in EMBEDDINGS],
        format_func=lambda k: next(e.name for e in EMBEDDINGS if e.key == k),
        key=keys.KB_NEW_EMBEDDING,
    )
    if st.button(t("kb.create.button"), key=keys.KB_CREATE, type="primary"):
        settings = app.settings
        try:
            kb = app.knowledge.create(name, embedding, SplitterSettings(settings.chunk_size, settings.chunk_overlap))
        except AppError as error:
            show_error(error)
        else:
            st.session_state["kb.just_created"] = kb.name
            st.toast(t("kb.created", name=kb.name))
            st.rerun()

names = [kb.name for kb in app.knowledge.all()]
if not names:
    st.info(t("kb.none"))
    st.stop()
picked = st.selectbox(t("kb.pick"), names, key=keys.KB_PICK)
kb = app.knowledge.get(picked)
stats = app.knowledge.stats(kb)
st.caption(t("kb.stats", sources=stats.sources, files=stats.files, chunks=stats.chunks, embedding=kb.embedding))

st.subheader(t("kb.ingest.header"))
job = app.jobs.latest(f"kb:{kb.id}", kind="ingest")


def describe(job) -> str:
    chunks = job.detail.get("chunks_embedded", 0)
    return t(
        "kb.ingest.progress",
        done=job.detail.get("files_done", 0),
        total=job.detail.get("files_total", 0),
        chunks=chunks,
        rate=chunks / job.elapsed_s if job.elapsed_s > 0 else 0.0,
        eta=duration(job.eta_s),
    )


if job and job.active:
    watch(job.id, describe, t("kb.ingest.running", name=kb.name), cancel_key=keys.KB_CANCEL)
else:
    folder = st.text_input(t("kb.ingest.folder"), key=keys.KB_FOLDER, help=t("kb.ingest.help"))
    if st.button(t("kb.ingest.button"), key=keys.KB_INGEST, type="primary", disabled=not folder.strip()):
        try:
            app.start_ingest(kb, Path(folder.strip()))
        except AppError as error:
            show_error(error)
        else:
            st.rerun()
    if job and job.status == "done":
        report = job.result
        message = t(
            "kb.ingest.done",
            seconds=report["seconds"],
            ingested=report["files_ingested"],
            unchanged=report["files_unchanged"],
            removed=report["files_removed"],
            added=report["chunks_added"],
            deleted=report["chunks_removed"],
        )
        (st.success if first_sight(job) else st.caption)(message)
        if report["skipped"]:
            with st.expander(t("kb.skipped", n=len(report["skipped"]))):
                skipped = pd.DataFrame(report["skipped"])
                skipped["reason"] = [t(f"skip.{r}") for r in skipped["reason"]]
                skipped.columns = [t("kb.skipped.path"), t("kb.skipped.reason"), t("kb.skipped.detail")]
                st.dataframe(skipped, hide_index=True, width="stretch")
    elif job and job.status == "cancelled":
        st.warning(t("kb.ingest.cancelled"))
    elif job and job.status == "interrupted":
        st.warning(t("kb.ingest.interrupted"))
    elif job and job.status == "failed":
        st.error(t("kb.ingest.failed", error=job.error_message(lang())), icon="⚠️")

st.subheader(t("kb.preview.header"))
chunks = app.knowledge.chunk_table(kb)
if chunks.empty:
    st.info(t("kb.preview.empty"))
    st.stop()
files = sorted(chunks["path"].unique())
only = st.selectbox(
    t("kb.preview.file"),
    [None, *files],
    format_func=lambda p: t("kb.preview.all_files") if p is None else p,
    key=keys.KB_FILE_FILTER,
)
shown = chunks if only is None else chunks[chunks["path"] == only]
shown = shown.reset_index(drop=True)
view = pd.DataFrame(
    {
        t("kb.col.path"): shown["path"],
        t("kb.col.seq"): shown["seq"],
        t("kb.col.lines"): shown["start_line"].astype(str) + "-" + shown["end_line"].astype(str),
        t("kb.col.chars"): shown["chars"],
        t("kb.col.text"): shown["text"].str.slice(0, 160),
    }
)
st.caption(t("kb.preview.pick"))
selection = st.dataframe(
    view, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key=keys.KB_CHUNKS
)
rows = selection.selection.rows if selection else []
if rows:
    chunk = shown.iloc[rows[0]]
    st.markdown(plain(t("kb.preview.chunk", path=chunk["path"], start=chunk["start_line"], end=chunk["end_line"])))
    st.code(chunk["text"], language=None, wrap_lines=True)
