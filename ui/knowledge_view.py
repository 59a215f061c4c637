"""The parts of the Knowledge page: the list, creation, sources, jobs, previews and chunks."""

from __future__ import annotations

import datetime
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from core.access import SHARINGS
from core.credentials import address_without_credentials
from core.errors import AppError
from core.jobs import JobState
from core.knowledge.records import KnowledgeBase
from core.knowledge.sources import FolderInput, GitInput, SourceInput, UploadInput
from core.knowledge.splitting import SplitterSettings
from core.services import Services
from ui import keys
from ui.common import duration, lang, plain, queue_toast, show_error, t
from ui.jobs import first_sight, watch

_CLEAR_NEW_NAME = "kb.clear_new_name"
# An error an action showed in this run, so the failed job behind it is not shown again.
_SHOWN_ERROR = "kb.shown_error"
# Jobs on a knowledge base; an evaluation or a draft also keeps its sources from changing.
_JOB_KINDS = ("ingest", "preview", "rebuild", "evaluate", "draft")


def overview(app: Services) -> None:
    """Every knowledge base with its figures."""
    rows = []
    for kb in app.knowledge.all():
        stats = app.knowledge.stats(kb)
        rows.append(
            {
                t("kb.col.name"): kb.name,
                t("kb.col.sources"): stats.sources,
                t("kb.col.files"): stats.files,
                t("kb.col.chunks"): stats.chunks,
                t("kb.col.embedding"): kb.embedding,
                t("kb.col.updated"): datetime.datetime.fromtimestamp(kb.updated).strftime("%Y-%m-%d %H:%M"),
                t("kb.col.size"): round(stats.size_bytes / 1e6, 1),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def create_form(app: Services) -> None:
    """Name, embedding model and chunking of a new knowledge base."""
    pool = app.knowledge.embeddings
    by_key = {e.key: e for e in pool.registry.all("embedding") if pool.available(e)}
    # Emptied before the field is drawn: a drawn field's value cannot change in this run.
    if st.session_state.pop(_CLEAR_NEW_NAME, False):
        st.session_state[keys.KB_NEW_NAME] = ""
    name = st.text_input(t("kb.create.name"), key=keys.KB_NEW_NAME, max_chars=64)
    embedding = st.selectbox(
        t("kb.create.embedding"),
        list(by_key),
        format_func=lambda k: by_key[k].name,
        index=list(by_key).index(app.settings.default_embedding),
        key=keys.KB_NEW_EMBEDDING,
        placeholder=t("select.one"),
    )
    size_col, overlap_col, unit_col = st.columns(3)
    unit = unit_col.selectbox(
        t("kb.create.unit"),
        ["chars", "tokens"],
        format_func=lambda u: t(f"kb.unit.{u}"),
        key=keys.KB_NEW_UNIT,
        placeholder=t("select.one"),
    )
    size = size_col.number_input(t("kb.create.chunk_size"), 50, 4000, app.settings.chunk_size, 50, key=keys.KB_NEW_SIZE)
    overlap = overlap_col.number_input(
        t("kb.create.chunk_overlap"), 0, 2000, app.settings.chunk_overlap, 10, key=keys.KB_NEW_OVERLAP
    )
    if unit == "tokens" and size > by_key[embedding].max_tokens:
        st.warning(
            t("kb.settings", size=size, unit=t("kb.unit.tokens"), overlap=overlap, limit=by_key[embedding].max_tokens)
        )
    if st.button(t("kb.create.button"), key=keys.KB_CREATE, type="primary"):
        try:
            kb = app.knowledge.create(name, embedding, SplitterSettings(int(size), int(overlap), unit))
        except AppError as error:
            show_error(error)
        else:
            st.session_state["kb.just_created"] = kb.name
            st.session_state[_CLEAR_NEW_NAME] = True
            queue_toast(t("kb.created", name=kb.name))
            st.rerun()


def health(app: Services, kb: KnowledgeBase, busy: bool) -> None:
    """Damage found in the records or the vector store, with the way to repair it."""
    if app.knowledge.records.recovered:
        st.warning(app.knowledge.records.recovered.message(lang()), icon="⚠️")
    try:
        check = app.knowledge.verify(kb)
    except AppError as error:
        show_error(error)
        check = {"missing": 1, "chunks": 0}
    if check["missing"]:
        if check["chunks"]:
            st.error(t("kb.damaged", missing=check["missing"], chunks=check["chunks"]), icon="⚠️")
        if st.button(t("kb.repair"), key=keys.KB_REPAIR, disabled=busy, type="primary"):
            _start(lambda: app.start_rebuild(kb))


def manage(app: Services, kb: KnowledgeBase) -> None:
    """Figures, settings, rename and delete of one knowledge base."""
    stats = app.knowledge.stats(kb)
    st.caption(
        t(
            "kb.stats",
            sources=stats.sources,
            files=stats.files,
            chunks=stats.chunks,
            embedding=kb.embedding,
            size=stats.size_bytes / 1e6,
        )
    )
    splitter = app.knowledge.splitter(kb)
    st.caption(
        t(
            "kb.settings",
            size=splitter.chunk_size,
            unit=t(f"kb.unit.{splitter.unit}"),
            overlap=splitter.chunk_overlap,
            limit=app.knowledge.embeddings.registry.get(kb.embedding).max_tokens,
        )
    )
    with st.container(horizontal=True):
        with st.popover(t("kb.rename"), icon=":material/edit:"):
            new_name = st.text_input(t("kb.rename.name"), kb.name, key=keys.KB_RENAME_NAME)
            if st.button(t("kb.rename.button"), key=keys.KB_RENAME):
                try:
                    renamed = app.knowledge.rename(kb, new_name)
                except AppError as error:
                    show_error(error)
                else:
                    st.session_state["kb.just_created"] = renamed.name
                    st.rerun()
        with st.popover(t("kb.delete"), icon=":material/delete:"):
            st.write(t("kb.delete.confirm", name=kb.name, chunks=stats.chunks))
            if st.button(t("kb.delete.yes"), key=keys.KB_DELETE_YES, type="primary"):
                try:
                    kept = app.knowledge.delete(kb)
                except AppError as error:  # another process is writing to it
                    show_error(error)
                    return
                if not kept:
                    queue_toast(t("kb.deleted", name=kb.name))
                    st.rerun()
                st.toast(t("kb.deleted", name=kb.name))
                for refusal in kept:  # rare: a copy made by hand or tampered with stays, and says why
                    st.warning(refusal.message(lang()), icon="⚠️")


def sources(app: Services, kb: KnowledgeBase, busy: bool) -> None:
    """The knowledge base's sources, each with Refresh and Remove."""
    listed = app.knowledge.sources(kb)
    if not listed:
        st.caption(t("kb.sources.none"))
    for source in listed:
        line, refresh_col, remove_col = st.columns([6, 1, 1], vertical_alignment="center")
        state = t("kb.source.commit", commit=source.commit_sha[:10]) if source.commit_sha else ""
        if source.updated is None:
            state = t("kb.source.never")
        label = t("kb.source.line", kind=t(f"kb.source.kind.{source.kind}"), location=source.location)
        line.markdown(plain(f"{label} {source.ref or ''} {state}"))
        if refresh_col.button(t("kb.source.refresh"), key=keys.KB_REFRESH + source.id, disabled=busy):
            _start(lambda source=source: app.start_refresh(kb, source))
        with remove_col.popover(t("kb.source.remove")):
            st.write(t("kb.source.remove.confirm"))
            if st.button(t("kb.source.remove.yes"), key=keys.KB_REMOVE_SOURCE + source.id, disabled=busy):
                try:
                    queue_toast(t("kb.source.removed", n=app.knowledge.remove_source(kb, source)))
                except AppError as error:
                    show_error(error)
                else:
                    st.rerun()


def add_source(app: Services, kb: KnowledgeBase, busy: bool) -> None:
    """Folder, git or upload: preview first, or ingest straight away."""
    st.caption(t("kb.ingest.help"))
    # Stateful, so the tab the user typed in stays open when the page is drawn again (a failure).
    folder_tab, git_tab, upload_tab = st.tabs(
        [t("kb.add.folder"), t("kb.add.git"), t("kb.add.upload")], key=keys.KB_ADD_KIND, on_change="rerun"
    )
    with folder_tab:
        folder = st.text_input(t("kb.ingest.folder"), key=keys.KB_FOLDER).strip()
        _actions(app, kb, "folder", FolderInput(Path(folder)) if folder else None, busy)
    with git_tab:
        # A token typed into the address is for the ingestion just started: it then leaves the field.
        if (cleaned := st.session_state.pop(keys.KB_GIT_URL_CLEANED, None)) is not None:
            st.session_state[keys.KB_GIT_URL] = cleaned
        url = st.text_input(t("kb.git.url"), key=keys.KB_GIT_URL, help=t("kb.git.url.help")).strip()
        ref = st.text_input(t("kb.git.ref"), key=keys.KB_GIT_REF).strip() or None
        _actions(app, kb, "git", GitInput(url, ref) if url else None, busy, lambda: _forget_token(url))
    with upload_tab:
        files = st.file_uploader(t("kb.upload.files"), accept_multiple_files=True, key=keys.KB_UPLOAD)
        item = UploadInput(tuple((f.name, f.getvalue()) for f in files)) if files else None
        _actions(app, kb, "upload", item, busy)


def _actions(app: Services, kb: KnowledgeBase, kind: str, item: SourceInput | None, busy: bool, ingesting=None) -> None:
    """Preview and Ingest buttons; ``ingesting`` is called once an ingestion has started."""
    preview_col, ingest_col, _ = st.columns([1, 1, 4])
    if preview_col.button(t("kb.preview.button"), key=keys.KB_PREVIEW + kind, disabled=busy or item is None):
        _start(lambda: app.start_preview(kb, item))
    if ingest_col.button(
        t("kb.ingest.button"), key=keys.KB_INGEST + kind, type="primary", disabled=busy or item is None
    ):
        _start(lambda: app.start_ingest(kb, item), ingesting)


def _forget_token(url: str) -> None:
    # Set before the field is drawn on the next run; a drawn field cannot be changed.
    st.session_state[keys.KB_GIT_URL_CLEANED] = address_without_credentials(url)


def _start(begin, started=None) -> None:
    try:
        begin()
    except AppError as error:
        show_error(error)
        st.session_state[_SHOWN_ERROR] = error.message(lang())
    else:
        if started:
            started()
        st.rerun()


def running_jobs(app: Services) -> None:
    """Every job running on a knowledge base this user sees, whichever is picked, so a reload
    or another selection never hides one.
    """
    bases = {kb.id: kb for kb in app.knowledge.all()}
    for job in app.jobs.active():
        kb = bases.get(job.target.removeprefix("kb:"))
        if kb is None or job.kind not in _JOB_KINDS:
            continue
        cancel = f"{keys.KB_CANCEL}.{job.id}" if app.can(kb, "edit") else None
        watch(job.id, _describe, t(f"kb.job.running.{job.kind}", name=kb.name), cancel_key=cancel)


def job_panel(app: Services, kb: KnowledgeBase, job: JobState | None) -> None:
    """What the last job on ``kb`` did (running ones show at the top of the page)."""
    shown_error = st.session_state.pop(_SHOWN_ERROR, None)
    if job is None or job.active:
        return
    if job.status == "failed":
        message = job.error_message(lang())
        if message != shown_error:  # an action just showed this very error
            st.error(t("kb.preview.failed" if job.kind == "preview" else "kb.ingest.failed", error=message), icon="⚠️")
        # A preview writes nothing, so it cannot have left the knowledge base empty.
        if job.kind != "preview" and app.knowledge.is_empty(kb):
            st.info(t("kb.ingest.failed.empty", name=kb.name))
    elif job.status in {"cancelled", "interrupted"}:
        st.warning(t(f"kb.ingest.{job.status}"))
    elif job.kind == "ingest":
        _ingest_result(job)
    elif job.kind == "rebuild" and first_sight(job):
        st.success(t("kb.rebuilt", chunks_added=job.result["chunks_added"]))
    elif job.kind == "preview":
        _preview_result(kb, job.result)


def _describe(job: JobState) -> str:
    if job.waiting_for:
        return t("kb.ingest.waiting", name=job.waiting_for)
    if job.kind == "preview":
        return t("kb.preview.progress", done=int(job.done), total=int(job.total or 0))
    if job.kind == "draft":
        return t("eval.draft.running")
    if job.kind == "evaluate":
        return t("eval.progress", done=int(job.done), total=int(job.total or 0), eta=duration(job.eta_s))
    if job.message == "prepare" or "files_total" not in job.detail:
        return t("kb.ingest.preparing")
    chunks = job.detail.get("chunks_embedded", 0)
    text = t(
        "kb.ingest.progress",
        done=job.detail.get("files_done", 0),
        total=job.detail.get("files_total", 0),
        chunks=chunks,
        rate=chunks / job.elapsed_s if job.elapsed_s > 0 else 0.0,
        eta=duration(job.eta_s),
    )
    if ocr_total := job.detail.get("ocr_pages_total"):
        text += t(
            "kb.ingest.ocr", file=plain(job.detail["ocr_file"]), done=job.detail["ocr_pages_done"], total=ocr_total
        )
    return text


def _ingest_result(job: JobState) -> None:
    r = job.result
    message = t(
        "kb.ingest.done",
        source=r["source"],
        seconds=r["seconds"],
        ingested=r["files_ingested"],
        unchanged=r["files_unchanged"],
        removed=r["files_removed"],
        added=r["chunks_added"],
        deleted=r["chunks_removed"],
    )
    (st.success if first_sight(job) else st.caption)(plain(message))
    skipped_table(r["skipped"])


def skipped_table(skipped: list[dict]) -> None:
    """Every skipped file with its reason, in an expander."""
    if not skipped:
        return
    with st.expander(t("kb.skipped", n=len(skipped))):
        table = pd.DataFrame(skipped, columns=["path", "reason", "detail"])
        table["reason"] = [t(f"skip.{r}") for r in table["reason"]]
        table.columns = [t("kb.skipped.path"), t("kb.skipped.reason"), t("kb.skipped.detail")]
        st.dataframe(table, hide_index=True, width="stretch")


def _preview_result(kb: KnowledgeBase, r: dict) -> None:
    st.markdown(f"**{plain(t('kb.dry.header', source=r['source']))}**")
    st.write(t("kb.dry.summary", files=r["files"], chunks=r["chunks"], skipped=len(r["skipped"])))
    suggested = r["suggested_embedding"]
    (st.info if suggested == kb.embedding else st.warning)(
        t(f"kb.suggest.{r['suggestion_reason']}", share=r["cjk_share"])
    )
    if suggested != kb.embedding:
        st.caption(t("kb.suggest.mismatch", current=kb.embedding, suggested=suggested))
    types_col, tokens_col = st.columns(2)
    types_col.caption(t("kb.dry.types"))
    types_col.bar_chart(pd.Series(r["files_by_type"], name=t("kb.col.files")))
    if r["token_counts"]:
        tokens_col.caption(t("kb.dry.tokens", limit=r["max_tokens"]))
        tokens_col.altair_chart(_token_chart(r["token_counts"], r["max_tokens"]))
    if r["at_limit"]:
        st.warning(t("kb.dry.at_limit", n=r["at_limit"], limit=r["max_tokens"]))
    if r.get("ocr_pages"):
        st.info(
            t("kb.dry.ocr", pages=r["ocr_pages"], time=duration(r["ocr_seconds"])), icon=":material/document_scanner:"
        )
    skipped_table(r["skipped"])
    with st.expander(t("kb.dry.samples")):
        for sample in r["samples"]:
            st.caption(
                plain(
                    t("kb.chunks.chunk", path=sample["path"], start=sample["start_line"], end=sample["end_line"])
                    + (f" · {sample['heading']}" if sample["heading"] else "")
                )
            )
            st.code(sample["text"], language=None, wrap_lines=True)


def _token_chart(counts: list[int], limit: int | None) -> alt.LayerChart | alt.Chart:
    """Chunks by token count on a numeric axis, with a rule at the model's limit."""
    bars = (
        alt.Chart(pd.DataFrame({"tokens": counts}))
        .mark_bar()
        .encode(
            # Bins over the whole axis up to the limit, so bars and ticks stay evenly spaced.
            x=alt.X(
                "tokens:Q",
                bin=alt.Bin(maxbins=20, extent=[0, max(limit or 0, *counts)]),
                title=t("kb.dry.tokens.axis"),
            ),
            y=alt.Y("count():Q", title=t("kb.col.chunks"), axis=alt.Axis(tickMinStep=1, format="d")),
        )
    )
    if not limit:
        return bars
    mark = alt.Chart(pd.DataFrame({"limit": [limit], "label": [t("kb.dry.limit", limit=limit)]}))
    rule = mark.mark_rule(color="#d62728", strokeDash=[5, 3], size=2).encode(x="limit:Q", tooltip=["label:N"])
    label = mark.mark_text(align="right", dx=-4, dy=-6, color="#d62728").encode(
        x="limit:Q", y=alt.value(0), text="label:N"
    )
    return bars + rule + label


def sharing(app: Services, kb: KnowledgeBase) -> None:
    """With logins on: who owns ``kb``, how it is shared, and (for its owner or an administrator) the switch."""
    owner = kb.owner or t("kb.owner.nobody")
    if not app.can(kb, "manage"):
        st.caption(plain(t("kb.owner", owner=owner, sharing=t(f"kb.sharing.{kb.sharing}"))))
        return
    choice = st.segmented_control(
        t("kb.sharing") + " · " + t("kb.owner", owner=owner, sharing="").rstrip(" ·"),
        list(SHARINGS),
        default=kb.sharing,
        format_func=lambda s: t(f"kb.sharing.{s}"),
        key=f"{keys.KB_SHARING}.{kb.id}",
    )
    if choice and choice != kb.sharing:
        try:
            app.knowledge.set_access(kb, kb.owner, choice)
        except AppError as error:
            show_error(error)
        else:
            st.rerun()
